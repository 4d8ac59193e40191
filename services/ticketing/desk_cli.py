"""`vaksin desk add|list|revoke`: the facility desks that check tickets in with the desk app.

`desk add --facility CODE --name "Meja 1"` checks the facility with the scheduler
(`scheduler.rpc.facility`), stores the desk and prints its one-time enrolment code (24 hours),
the link that enrols a tablet (`<desk_url>#enrol=CODE`, desk_url from `--url`, `DESK_URL` or
runtime.json) and that link as a QR code the tablet's camera can scan. `desk list` shows each
desk with its state and check-ins; `desk revoke ID` makes its credential worthless at once.
Exit codes: 0 done, 1 refused or could not run (unknown facility or desk, no database).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import nats
from nats.errors import Error as NatsError

from services.common.cli import cli_pool, cli_user
from services.common.clock import WIB
from services.common.contracts.scheduler import Facility, FacilityReply, FacilityRequest
from services.common.contracts.subjects import SCHEDULER_RPC_FACILITY
from services.common.settings import Settings
from services.ticketing import desks, domain, qr

FacilityLookup = Callable[[Settings, str], Awaitable[Facility | None]]


class LookupFailed(Exception):
    pass


def add_parsers(sub: argparse._SubParsersAction) -> None:
    desk = sub.add_parser("desk", help="facility desks of the check-in app (/desk/)")
    desk_sub = desk.add_subparsers(dest="action", required=True)
    add = desk_sub.add_parser("add", help="add a desk: prints its one-time enrolment code and QR")
    add.add_argument("--facility", required=True, help="facility code, e.g. F3201001")
    add.add_argument("--name", required=True, help='what the desk is called, e.g. "Meja 1"')
    add.add_argument("--by", default="", help="who adds it (default: $USER)")
    add.add_argument("--url", default="", help="the desk app's address (default: desk_url)")
    add.add_argument("--png", type=Path, help="also write the enrolment QR code to this PNG")
    add.add_argument("--json", action="store_true", help="print the answer as JSON")
    listing = desk_sub.add_parser("list", help="the desks, with their state and check-ins")
    listing.add_argument("--facility", help="only this facility's desks")
    listing.add_argument("--all", action="store_true", help="revoked desks too")
    listing.add_argument("--json", action="store_true", help="print the answer as JSON")
    revoke = desk_sub.add_parser("revoke", help="revoke desk ID: its credential stops working")
    revoke.add_argument("id", type=int, help="the desk's id (from `desk list`)")
    revoke.add_argument("--by", default="", help="who revokes it (default: $USER)")


async def scheduler_facility(settings: Settings, code: str) -> Facility | None:
    """The facility as the scheduler knows it (None: no such code)."""
    try:
        nc = await nats.connect(settings.nats_servers, connect_timeout=3, max_reconnect_attempts=0)
    except (OSError, NatsError) as e:
        raise LookupFailed(f"cannot reach NATS to check the facility: {e}") from None
    try:
        reply = await nc.request(
            SCHEDULER_RPC_FACILITY, FacilityRequest(code=code).model_dump_json().encode(), 3
        )
    except NatsError as e:
        raise LookupFailed(f"the scheduler did not answer ({type(e).__name__})") from None
    finally:
        await nc.close()
    answer = FacilityReply.model_validate_json(reply.data)
    if answer.error:
        raise LookupFailed(f"the scheduler could not look it up: {answer.error}")
    return answer.facility


def desk_url(settings: Settings, given: str) -> str:
    return given or os.environ.get("DESK_URL", "") or str(settings.runtime().get("desk_url", ""))


def enrolment_link(url: str, code: str) -> str:
    return f"{url.split('#')[0]}#enrol={code}"


def terminal_qr(text: str, ansi: bool) -> str:
    """The QR code of `text` in half blocks, two modules a character row, with its quiet zone.
    With `ansi`, drawn black on white whatever the terminal's colours (cameras want dark
    modules on a light ground)."""
    code = qr.matrix(text)
    quiet = 2
    side = code.side + 2 * quiet
    blank = bytes(side)
    rows = [blank] * quiet + [bytes(quiet) + r + bytes(quiet) for r in code.rows()]
    rows += [blank] * (quiet + (len(rows) + quiet) % 2)
    glyphs = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}
    lines = []
    for top, bottom in zip(rows[::2], rows[1::2], strict=True):
        line = "".join(glyphs[(a, b)] for a, b in zip(top, bottom, strict=True))
        lines.append(f"\x1b[30;47m{line}\x1b[0m" if ansi else line)
    return "\n".join(lines)


def _user(given: str) -> str:
    return given[:100] if given else cli_user()


def _at(when: datetime | None) -> str:
    return when.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB") if when else "-"


def _state(desk: desks.Desk, now: datetime) -> str:
    if desk.revoked_at:
        return f"revoked {_at(desk.revoked_at)}"
    if desk.enrolled_at:
        return f"enrolled {_at(desk.enrolled_at)}"
    if desk.enrolment_expires_at <= now:
        return "enrolment code expired"
    return f"waiting for enrolment (until {_at(desk.enrolment_expires_at)})"


async def run_desk(
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    lookup: FacilityLookup = scheduler_facility,
) -> int:
    now = datetime.now(UTC)
    facility: Facility | None = None
    if args.action == "add":
        name = " ".join(args.name.split())
        if not 1 <= len(name) <= domain.DESK_NAME_MAX:
            print(f"--name must be 1-{domain.DESK_NAME_MAX} characters", file=err)
            return 1
        try:
            facility = await lookup(settings, args.facility.strip().upper())
        except LookupFailed as e:
            print(f"{e}; is the system up (`vaksin up`)?", file=err)
            return 1
        if facility is None:
            print(f"no facility {args.facility!r}: see `vaksin facilities import`", file=err)
            return 1
    pool = await cli_pool(settings, err)
    if pool is None:
        return 1
    try:
        if args.action == "add":
            assert facility is not None
            new = await desks.add(
                pool,
                facility_code=facility.code,
                facility_name=facility.name,
                name=" ".join(args.name.split()),
                by=_user(args.by),
                now=now,
            )
            return _print_added(new, desk_url(settings, args.url), args, out)
        if args.action == "list":
            listings = await desks.listing(pool, args.facility, args.all)
            _print_list(listings, args.json, now, out)
            return 0
        desk, changed = await desks.revoke(pool, args.id, _user(args.by), now)
    finally:
        await pool.close()
    if desk is None:
        print(f"no desk {args.id}", file=err)
        return 1
    if changed:
        print(f'desk {desk.desk_id} "{desk.name}" revoked: its credential opens nothing', file=out)
    else:
        print(f'desk {desk.desk_id} "{desk.name}" was revoked {_at(desk.revoked_at)}', file=out)
    return 0


def _print_added(new: desks.NewDesk, url: str, args: argparse.Namespace, out: TextIO) -> int:
    desk, code = new.desk, new.enrolment_code
    link = enrolment_link(url, code) if url else None
    if args.png:
        args.png.write_bytes(qr.render_png(link or code))
    if args.json:
        answer = {
            "desk_id": desk.desk_id,
            "name": desk.name,
            "facility_code": desk.facility_code,
            "facility_name": desk.facility_name,
            "enrolment_code": code,
            "expires_at": desk.enrolment_expires_at.isoformat(),
            "enrolment_url": link,
        }
        print(json.dumps(answer, indent=2), file=out)
        return 0
    print(
        f'desk {desk.desk_id} "{desk.name}" at {desk.facility_name} ({desk.facility_code})\n'
        f"enrolment code  {code}   (one use, until {_at(desk.enrolment_expires_at)})",
        file=out,
    )
    if link:
        print(f"open on the tablet  {link}\nor scan this with its camera:\n", file=out)
        print(terminal_qr(link, ansi=out.isatty()), file=out)
    else:
        print("type the code into the desk app (/desk/ on the ticketing service)", file=out)
    return 0


def _print_list(
    listings: list, as_json: bool, now: datetime, out: TextIO
) -> None:  # list[repo.DeskListing]
    if as_json:
        rows = [
            {
                "desk_id": item.desk.desk_id,
                "facility_code": item.desk.facility_code,
                "facility_name": item.desk.facility_name,
                "name": item.desk.name,
                "state": _state(item.desk, now),
                "enrolled_at": item.desk.enrolled_at,
                "revoked_at": item.desk.revoked_at,
                "last_seen_at": item.desk.last_seen_at,
                "checkins": item.checkins,
                "last_checkin_at": item.last_checkin_at,
            }
            for item in listings
        ]
        print(json.dumps(rows, indent=2, default=str), file=out)
        return
    if not listings:
        print("no desks (add one with `vaksin desk add --facility CODE --name NAME`)", file=out)
        return
    print(
        f"{'ID':>4}  {'FACILITY':<10} {'NAME':<16} {'CHECK-INS':>9}  {'LAST SEEN':<20} STATE",
        file=out,
    )
    for item in listings:
        desk = item.desk
        print(
            f"{desk.desk_id:>4}  {desk.facility_code:<10} {desk.name[:16]:<16} "
            f"{item.checkins:>9}  {_at(desk.last_seen_at):<20} {_state(desk, now)}",
            file=out,
        )
