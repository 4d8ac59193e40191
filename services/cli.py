"""`vaksin`: the one command for operators and developers (see README for every subcommand)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from services.common.settings import load_settings
from services.console import cli as operator_cli
from services.registry import SERVICES
from services.ticketing import cli as ticket_cli
from services.ticketing import desk_cli


def _intake_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise argparse.ArgumentTypeError(f"{value!r} is not an intake id (a number, e.g. 42)")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vaksin", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything: embedded NATS/Postgres unless URLs are set")
    up.add_argument("--trace", action="store_true",
                    help="trace every message into DATA_DIR/traces.jsonl (see `vaksin trace`)")  # fmt: skip
    trace = sub.add_parser("trace", help="the spans of one message, from `vaksin up --trace`")
    trace.add_argument("wamid", nargs="?", help="its wamid (or wamid#digest); none: the latest")
    trace.add_argument("--file", type=Path, help="the span file (default: DATA_DIR/traces.jsonl)")
    trace.add_argument("--last", type=int, default=10, help="without WAMID: how many to list")
    sub.add_parser("migrate", help="apply pending database migrations")
    svc = sub.add_parser("service", help="run one service in the foreground")
    svc.add_argument("name", choices=list(SERVICES))

    registry = sub.add_parser("registry", help="the health-worker target registry")
    registry_sub = registry.add_subparsers(dest="action", required=True)
    imp = registry_sub.add_parser(
        "import", help="import FILE.csv (nik,name,phone,profession,facility_code)"
    )
    imp.add_argument("file", type=Path)

    screening = sub.add_parser("screening", help="screening rule sets (versioned questionnaires)")
    screening_sub = screening.add_subparsers(dest="action", required=True)
    load = screening_sub.add_parser(
        "load", help="validate FILE.yaml|json and load it as a new rule set"
    )
    load.add_argument("file", type=Path)
    screening_sub.add_parser("list", help="every rule set and when it is in force")

    facilities = sub.add_parser("facilities", help="vaccination facilities")
    facilities_sub = facilities.add_subparsers(dest="action", required=True)
    fac_imp = facilities_sub.add_parser(
        "import", help="import FILE.csv (code,name,address,regency,province)"
    )
    fac_imp.add_argument("file", type=Path)

    sessions = sub.add_parser("sessions", help="vaccination sessions (places and times)")
    sessions_sub = sessions.add_subparsers(dest="action", required=True)
    ses_imp = sessions_sub.add_parser(
        "import", help="import FILE.csv (facility_code,date,start,end,capacity,vaccine)"
    )
    ses_imp.add_argument("file", type=Path)
    ses_cancel = sessions_sub.add_parser(
        "cancel", help="cancel session ID: its people are told and moved to a new session"
    )
    ses_cancel.add_argument("session_id", type=int)

    intake = sub.add_parser("intake", help="requests of unlisted health workers (operators)")
    intake_sub = intake.add_subparsers(dest="action", required=True)
    in_list = intake_sub.add_parser("list", help="the queue, oldest first")
    in_list.add_argument("--status", choices=["open", "approved", "rejected", "all"],
                         default="open")  # fmt: skip
    in_list.add_argument("--regency", help="NIK region: province (32) or regency (3201) code")
    in_list.add_argument("--facility", help="workplace facility code")
    in_list.add_argument("--older-than-hours", type=float, help="waiting at least N hours")
    for action, text in (("show", "one request in full, with its history"),
                         ("approve", "add the person to the registry for that number"),
                         ("reject", "refuse the request; the user is told the reason")):  # fmt: skip
        one = intake_sub.add_parser(action, help=text)
        one.add_argument("id", type=_intake_id, help="the request's id (from `intake list`)")
        one.add_argument("--by", help="who acts (default: $USER); recorded in the audit")
        if action == "reject":
            one.add_argument("--reason", required=True, help="told to the user")

    ticket_cli.add_parsers(sub)
    desk_cli.add_parsers(sub)
    operator_cli.add_parsers(sub)
    stats = sub.add_parser("stats", help="counts from every service (exit 1 if one is silent)")
    stats.add_argument("--json", action="store_true", help="every answer as JSON")
    sub.add_parser("demo-data", help="load a small sample registry into the running system")
    chat = sub.add_parser("chat", help="chat with the running system as a WhatsApp user")
    chat.add_argument("--phone", default="6281200000001", help="the WhatsApp number you write from")
    chat.add_argument("--name", default="Demo Nakes", help="your WhatsApp profile name")
    chat.add_argument("--channel", choices=("whatsapp", "sms", "ussd"), default="whatsapp",
                      help="sms: text the service; ussd: dial *119# (services/channels)")  # fmt: skip
    docs = sub.add_parser("docs", help="regenerate the AsyncAPI documents in docs/asyncapi/")
    docs.add_argument("--out", type=Path, default=Path("docs/asyncapi"))
    fake = sub.add_parser("fake-graph", help="run the local fake WhatsApp Graph API")
    fake.add_argument("--port", type=int, default=0)
    fake.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    if args.command == "up":
        from services.runner import run_up

        return run_up(settings, trace=args.trace)
    if args.command == "trace":
        from services.trace_cli import run_trace

        return run_trace(settings, args.wamid, file=args.file, last=args.last)
    if args.command == "service":
        from services.runner import run_service

        return run_service(args.name, settings)
    if args.command == "fake-graph":
        from services.devtools.fake_graph import serve_forever

        return serve_forever(args.port, args.host)
    if args.command == "docs":
        from services.common.asyncapi import write_all

        for path in write_all(args.out):
            print(f"wrote {path}")
        return 0
    settings = settings.require_urls()
    if args.command == "migrate":
        from services.common.migrate import migrate

        applied = asyncio.run(migrate(settings.database_url or ""))
        print("\n".join(f"applied {m}" for m in applied) or "database is up to date")
        return 0
    if args.command == "registry":
        from services.identity.registry_import import import_registry_file

        return asyncio.run(import_registry_file(settings, args.file))
    if args.command == "screening":
        from services.screening.cli import list_rule_sets, load_rule_set_file

        if args.action == "load":
            return asyncio.run(load_rule_set_file(settings, args.file))
        return asyncio.run(list_rule_sets(settings))
    if args.command == "facilities":
        from services.scheduler.cli import import_facilities_file

        return asyncio.run(import_facilities_file(settings, args.file))
    if args.command == "sessions":
        from services.scheduler.cli import cancel_session, import_sessions_file

        if args.action == "import":
            return asyncio.run(import_sessions_file(settings, args.file))
        return asyncio.run(cancel_session(settings, args.session_id))
    if args.command == "intake":
        from services.identity.intake_cli import run_intake

        return asyncio.run(run_intake(settings, args))
    if args.command in ("ticket", "checkin"):
        return asyncio.run(ticket_cli.run_ticket(settings, args))
    if args.command == "desk":
        return asyncio.run(desk_cli.run_desk(settings, args))
    if args.command == "operator":
        return asyncio.run(operator_cli.run_operator(settings, args))
    if args.command == "stats":
        from services.stats_cli import run_stats

        return asyncio.run(run_stats(settings, as_json=args.json))
    if args.command == "demo-data":
        from services.devtools.demo import load_demo_data

        return asyncio.run(load_demo_data(settings))
    if args.command == "chat" and args.channel != "whatsapp":
        from services.devtools.channel_chat import run_channel_chat

        return asyncio.run(run_channel_chat(settings, channel=args.channel, phone=args.phone))
    if args.command == "chat":
        from services.devtools.chat import run_chat

        return asyncio.run(run_chat(settings, phone=args.phone, name=args.name))
    return 2


if __name__ == "__main__":
    sys.exit(main())
