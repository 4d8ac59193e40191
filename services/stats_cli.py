"""`vaksin stats [--json]`: the system in counts. Each service counts only its own schema and
answers `<owner>.rpc.stats` (services/common/stats.py); this asks them all at once over NATS and
waits up to TIMEOUT seconds for each. One block per service, or every answer as JSON. A service
that does not answer (or answers that it could not count) is shown so, and the exit code is 1;
0 when every service answered with its counts."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import TextIO

import nats.errors
from faststream.nats import NatsBroker
from pydantic import ValidationError

from services.common.contracts.channels import CHANNELS_RPC_SMS_STATS, CHANNELS_RPC_USSD_STATS
from services.common.contracts.stats import ServiceStats, StatsRequest
from services.common.contracts.subjects import (
    CONSOLE_RPC_STATS,
    IDENTITY_RPC_STATS,
    INGRESS_RPC_STATS,
    NOTIFIER_RPC_STATS,
    SCHEDULER_RPC_STATS,
    SCREENING_RPC_STATS,
    TICKETING_RPC_STATS,
)
from services.common.settings import Settings

TIMEOUT = 3.0
NOT_ANSWERING = "not answering"


@dataclass(frozen=True)
class Source:
    subject: str
    # Count key -> label. `<group>.*` labels the members of a breakdown without one of their own
    # (`{}`: the member, underscores as spaces); a key without any label is shown as it is. A
    # label indented by two spaces is a part of the count above it.
    labels: dict[str, str]


# The services asked, in this order, by their names in services/registry.py (the webhook edge,
# `ingress`, has no database and nothing to count).
SOURCES: dict[str, Source] = {
    "identity": Source(
        IDENTITY_RPC_STATS,
        {
            "people": "people in the registry",
            "people_from_intake": "  through intake",
            "people_verified": "  verified in the chat",
            "intake.*": "intake requests {}",
            "numbers_locked": "numbers locked now",
        },
    ),
    "screening": Source(
        SCREENING_RPC_STATS,
        {
            "screenings": "screenings",
            "outcome.postpone": "  postponed",
            "outcome.refer": "  referred to a hospital",
            "outcome.*": "  {}",
        },
    ),
    "scheduler": Source(
        SCHEDULER_RPC_STATS,
        {
            "facilities": "facilities",
            "sessions_ahead": "sessions from today on",
            "free_seats_ahead": "free seats from today on",
            "bookings_active.*": "active bookings, {}",
            "bookings_done": "bookings done (dose given)",
        },
    ),
    "ticketing": Source(
        TICKETING_RPC_STATS,
        {
            "tickets_issued": "tickets issued",
            "tickets_usable": "usable now",
            "tickets_redeemed": "redeemed at a desk",
            "doses_given": "doses given",
            "tickets_revoked": "revoked",
        },
    ),
    "notifier": Source(
        NOTIFIER_RPC_STATS,
        {
            "queued": "messages queued",
            "queued_ready": "  ready to send now",
            "last_24h": "messages in the last 24 h",
            "last_24h.*": "  {}",
            "dead_letters_24h": "dead letters in the last 24 h",
        },
    ),
    "dialog": Source(
        INGRESS_RPC_STATS,
        {"conversations": "conversations", "step.*": "  at step {}"},
    ),
    "ussd": Source(
        CHANNELS_RPC_USSD_STATS,
        {
            "sessions_24h": "USSD sessions in the last 24 h",
            "screens_unseen": "  answers kept for the next dial",
            "numbers": "numbers last seen on USSD",
        },
    ),
    "sms": Source(
        CHANNELS_RPC_SMS_STATS,
        {
            "numbers": "numbers last seen on SMS",
            "opted_out": "  opted out (STOP)",
            "sms.*": "SMS {} (queue, and the last 24 h)",
        },
    ),
    "console": Source(
        CONSOLE_RPC_STATS,
        {
            "accounts.*": "operator accounts, {}",
            "accounts_disabled": "  disabled",
            "sessions_live": "sessions signed in",
            "actions_24h": "actions in the last 24 h",
            "refused_24h": "  refused",
            "failed_logins_24h": "  failed logins",
        },
    ),
}


async def _ask(broker: NatsBroker, name: str, subject: str, wait: float) -> ServiceStats:
    try:
        reply = await broker.request(StatsRequest(), subject, timeout=wait)
    except (TimeoutError, nats.errors.NoRespondersError):
        return ServiceStats(service=name, error=NOT_ANSWERING)
    try:
        return ServiceStats.model_validate(await reply.decode())
    except ValidationError as e:
        return ServiceStats(service=name, error=f"unreadable answer: {e.error_count()} error(s)")


async def collect(settings: Settings, wait: float = TIMEOUT) -> dict[str, ServiceStats]:
    """Every service's answer, asked concurrently; `error` says which did not answer."""
    broker = NatsBroker(
        settings.nats_servers,
        name="vaksin-stats",
        connect_timeout=max(int(wait), 1),
        # One more try a second later, then NoServersError (0 would mean: try forever).
        max_reconnect_attempts=1,
        reconnect_time_wait=1,
        logger=None,
    )
    async with broker:
        answers = await asyncio.gather(
            *(_ask(broker, name, s.subject, wait) for name, s in SOURCES.items())
        )
    return dict(zip(SOURCES, answers, strict=True))


def label(labels: dict[str, str], key: str) -> str:
    if key in labels:
        return labels[key]
    group, dot, member = key.partition(".")
    if dot and f"{group}.*" in labels:
        return labels[f"{group}.*"].format(member.replace("_", " "))
    return key


def render(answers: dict[str, ServiceStats]) -> str:
    blocks = []
    for name, answer in answers.items():
        if answer.error:
            blocks.append(f"{name}: {answer.error}")
            continue
        labels = SOURCES[name].labels if name in SOURCES else {}
        rows = [(label(labels, key), f"{n:,}") for key, n in answer.counts.items()]
        left = max((len(text) for text, _ in rows), default=0)
        right = max((len(n) for _, n in rows), default=0)
        blocks.append("\n".join([name, *(f"  {t:<{left}}  {n:>{right}}" for t, n in rows)]))
    return "\n\n".join(blocks)


async def run_stats(settings: Settings, *, as_json: bool = False, out: TextIO | None = None) -> int:
    try:
        answers = await collect(settings)
    except (OSError, nats.errors.Error) as e:
        print(f"cannot reach NATS at {settings.nats_url}: {e}", file=sys.stderr)
        return 1
    if as_json:
        text = json.dumps({n: a.model_dump(mode="json") for n, a in answers.items()}, indent=2)
    else:
        text = render(answers)
    print(text, file=out or sys.stdout)
    return 1 if any(a.error for a in answers.values()) else 0
