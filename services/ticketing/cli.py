"""`vaksin ticket verify TOKEN` and `vaksin checkin TOKEN [--dose-given]` at the facility desk.

TOKEN is the text of the ticket's QR code (a scanner types it; `-` reads it from stdin). The
answer says valid / not yet / expired / revoked / forged / already used, with who and when, and
the exit code lets a desk script rely on it: 0 only for a valid ticket (verify) or a successful
check-in (checkin, including recording the dose of a ticket checked in earlier); otherwise
EXIT_CODES below; 1 for a failure to run at all (no database, bad measurement).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TextIO

from services.common.cli import cli_pool, cli_user
from services.common.clock import WIB
from services.common.contracts.ticketing import TicketCheck, TicketStatus
from services.common.settings import Settings
from services.ticketing import domain, tickets
from services.ticketing.token import InvalidSigningKey, load_signing_key

EXIT_CODES = {
    TicketStatus.VALID: 0,
    TicketStatus.REDEEMED: 0,
    TicketStatus.DOSE_RECORDED: 0,
    TicketStatus.FORGED: 3,
    TicketStatus.EXPIRED: 4,
    TicketStatus.REVOKED: 5,
    TicketStatus.ALREADY_USED: 6,
    TicketStatus.NOT_YET: 7,
}
CHANNEL = "cli"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ticket = sub.add_parser("ticket", help="vaccination tickets (QR codes) at the desk")
    ticket_sub = ticket.add_subparsers(dest="action", required=True)
    verify = ticket_sub.add_parser(
        "verify", help="what a ticket's QR code means now (exit 0 only when valid)"
    )
    _common(verify)
    checkin = sub.add_parser(
        "checkin", help="redeem a ticket at the desk (exit 0 only when checked in)"
    )
    _common(checkin)
    checkin.add_argument(
        "--dose-given", action="store_true", help="the dose was given: books dose 2 after dose 1"
    )
    checkin.add_argument("--temperature", help="on-site screening: temperature in °C, e.g. 36.5")
    checkin.add_argument("--blood-pressure", help="on-site screening: e.g. 120/80")
    checkin.add_argument("--by", default="", help="who is checking in (default: $USER)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("token", help="the text of the ticket's QR code, or - to read stdin")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def _read_token(raw: str, stdin: TextIO) -> str:
    return stdin.read().strip() if raw == "-" else raw.strip()


def render(check: TicketCheck) -> str:
    lines = [f"{check.status.value.upper().replace('_', ' ')}: {check.detail}"]
    if check.code:
        times = f"{check.start:%H:%M}-{check.end:%H:%M}" if check.start and check.end else ""
        lines += [
            f"  ticket      {check.code} (dose {check.dose})",
            f"  person      {check.masked_name}  NIK {check.masked_nik or '-'}",
            f"  facility    {check.facility_name} ({check.facility_code})",
            f"  session     {check.date} {times} WIB",
        ]
    for label, when, who in (
        ("checked in", check.redeemed_at, check.redeemed_by),
        ("dose given", check.dose_given_at, None),
        ("revoked", check.revoked_at, check.revoked_reason),
    ):
        if when is not None:
            at = when.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB")
            lines.append(f"  {label:<11} {at}" + (f" ({who})" if who else ""))
    return "\n".join(lines)


async def run_ticket(
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    stdin: TextIO = sys.stdin,
) -> int:
    try:
        key = load_signing_key(settings.ticket_signing_key)
        measured = domain.measurements(
            getattr(args, "temperature", None), getattr(args, "blood_pressure", None)
        )
    except (InvalidSigningKey, domain.InvalidMeasurement) as e:
        print(e, file=err)
        return 1
    token = _read_token(args.token, stdin)
    pool = await cli_pool(settings, err)
    if pool is None:
        return 1
    now = datetime.now(UTC)
    try:
        if args.command == "checkin":
            check = await tickets.checkin(
                pool,
                token,
                key,
                by=args.by or cli_user(CHANNEL),
                via=CHANNEL,
                measured=measured,
                dose_given=args.dose_given,
                now=now,
            )
        else:
            check = await tickets.check(pool, token, key, now)
    finally:
        await pool.close()
    print(check.model_dump_json(indent=2) if args.json else render(check), file=out)
    return EXIT_CODES[check.status]
