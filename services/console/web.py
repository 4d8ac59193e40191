"""The console's pages under /console/: server-rendered (aiohttp-jinja2, autoescaped), a little
plain JS for the figures that update by themselves (static/console.js, uPlot from npm).

Security, every request: a session cookie (`vaksin_console`: HttpOnly, SameSite=Strict, Path
/console/, Secure behind TLS) whose token the server keeps as a digest; a session ends when idle
(CONSOLE_IDLE_MINUTES) or after accounts.SESSION_HOURS. Every POST carries the session's CSRF
token (the login form a double-submit token of its own), checked before anything else. Every
action is allowed by the account's role (security.allowed) on the server, or refused with 403,
and written to the audit log with who, what, when and from where. Pages show NIK and numbers
masked only (the owners never send more). Content-Security-Policy: this origin only, no inline
script.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import asyncpg
import jinja2
import structlog
from aiohttp import web

from services.common.clock import WIB, jakarta_today
from services.common.contracts.identity import PROFESSIONS
from services.common.contracts.operations import (
    MAX_CSV_BYTES,
    CsvImportReply,
    CsvImportRequest,
    DeskAddReply,
    DeskAddRequest,
    DesksReply,
    DesksRequest,
    IntakeDecideReply,
    IntakeDecideRequest,
    IntakeDecision,
    IntakeDetailReply,
    IntakeDetailRequest,
    IntakeListReply,
    IntakeListRequest,
    OperatorError,
    SessionCancelReply,
    SessionCancelRequest,
    SessionsReply,
    SessionsRequest,
    error_code,
)
from services.common.contracts.subjects import (
    IDENTITY_RPC_INTAKE_DECIDE,
    IDENTITY_RPC_INTAKE_DETAIL,
    IDENTITY_RPC_INTAKE_LIST,
    SCHEDULER_RPC_FACILITIES_IMPORT,
    SCHEDULER_RPC_SESSION_CANCEL,
    SCHEDULER_RPC_SESSIONS,
    SCHEDULER_RPC_SESSIONS_IMPORT,
    TICKETING_RPC_DESK_ADD,
    TICKETING_RPC_DESKS,
)
from services.common.settings import Settings
from services.console import accounts, security
from services.console import repository as repo
from services.console.figures import FiguresCache
from services.console.rpc import SLOW_TIMEOUT, Services, Unavailable
from services.console.security import Passwords, Permission

log = structlog.get_logger(__name__)

ROOT = Path(__file__).parent
STATIC = ROOT / "static"
MODULES = STATIC / "node_modules"
PREFIX = "/console/"
COOKIE = "vaksin_console"
LOGIN_COOKIE = "vaksin_console_login"
MAX_REASON = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

pool_key = web.AppKey("console_pool", asyncpg.Pool)
services_key = web.AppKey("console_services", Services)
passwords_key = web.AppKey("console_passwords", Passwords)
settings_key = web.AppKey("console_settings", Settings)
figures_key = web.AppKey("console_figures", FiguresCache)
# Request-scoped: the session of a signed-in request.
session_key = web.RequestKey("console_session", repo.Session)

FILES: dict[str, tuple[Path, str]] = {
    "console.css": (STATIC / "console.css", "text/css; charset=utf-8"),
    "console.js": (STATIC / "console.js", "text/javascript; charset=utf-8"),
    # uPlot (npm, pinned by static/package-lock.json, installed by `make console`).
    "vendor/uplot.js": (MODULES / "uplot/dist/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "vendor/uplot.css": (MODULES / "uplot/dist/uPlot.min.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
PUBLIC = {"login", "static"}  # route names that need no session


# --- request context ---------------------------------------------------------------------------


def client_address(request: web.Request) -> str:
    """The client's address: behind the Ingress (CONSOLE_BEHIND_PROXY) the one the proxy
    appended to X-Forwarded-For (the last: a client can forge the earlier ones), else the
    socket's peer."""
    if request.app[settings_key].console_behind_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:64]
    return (request.remote or "?")[:64]


def _secure(request: web.Request) -> bool:
    if request.secure:
        return True
    behind = request.app[settings_key].console_behind_proxy
    return behind and request.headers.get("X-Forwarded-Proto", "") == "https"


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path=PREFIX, httponly=True, samesite="Strict", secure=_secure(request)
    )


def current(request: web.Request) -> repo.Session:
    return request[session_key]


async def audit(
    request: web.Request,
    action: str,
    outcome: str,
    *,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    session: repo.Session | None = request.get(session_key)
    await repo.audit(
        request.app[pool_key],
        account=session.name if session else None,
        role=session.role if session else None,
        action=action,
        target=target,
        outcome=outcome,
        detail=security.mask_digits(detail)[:500] if detail else None,
        address=client_address(request),
    )


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    session: repo.Session | None = request.get(session_key)
    base = {
        "me": session,
        "can": (lambda p: session is not None and security.allowed(session.role, Permission(p))),
        "csrf": session.csrf_token if session else "",
        "prefix": PREFIX,
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _message(error: str | None) -> str:
    """A reply's `error` as told to the operator: its detail, without the code."""
    return (error or "").partition(": ")[2] or (error or "")


# --- middlewares -------------------------------------------------------------------------------


@web.middleware
async def protect(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer, and a page (503) when an owner does not answer."""
    try:
        response = await handler(request)
    except Unavailable as e:
        response = render(
            request, "error.html", {"title": "Not answering", "detail": f"{e}; try again"}, 503
        )
    except web.HTTPException as e:
        if e.status < 400:  # a redirect
            e.headers.update(HEADERS)
            raise
        response = render(request, "error.html", {"title": e.reason, "detail": e.text}, e.status)
    response.headers.update(HEADERS)
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A live session for every page but the login's and the static files; the CSRF token on
    every POST; a first login goes to the password change before anything else."""
    route = request.match_info.route.name or ""
    if route.split(":")[0] in PUBLIC:
        return await handler(request)
    session = await accounts.current(
        request.app[pool_key],
        request.cookies.get(COOKIE),
        datetime.now(UTC),
        timedelta(minutes=request.app[settings_key].console_idle_minutes),
    )
    if session is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"{PREFIX}login")
        raise web.HTTPUnauthorized(text="Your session has ended: sign in again.")
    request[session_key] = session
    if request.method == "POST":
        form = await request.post()
        presented = form.get("csrf")
        if not security.csrf_ok(
            session.csrf_token, presented if isinstance(presented, str) else None
        ):
            await audit(request, f"csrf:{route}", "refused", target=request.path[:100])
            raise web.HTTPForbidden(text="The form was not sent from this console (CSRF check).")
    if session.must_change_password and route.split(":")[0] not in ("password", "logout"):
        raise web.HTTPSeeOther(f"{PREFIX}password")
    return await handler(request)


def requires(permission: Permission) -> Callable[[Handler], Handler]:
    """The route's permission, checked on the server for every request (403 and audited)."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = current(request)
            if not security.allowed(session.role, permission):
                await audit(request, permission.value, "refused", target=request.path[:100],
                            detail=f"role {session.role}")  # fmt: skip
                raise web.HTTPForbidden(
                    text=f"Your role ({session.role}) may not do this ({permission.value})."
                )
            return await handler(request)

        return guarded

    return wrap


# --- login, logout, password -------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    token = security.new_token()
    response = render(request, "login.html", {"login_csrf": token, "error": None})
    _set_cookie(request, response, LOGIN_COOKIE, token)
    return response


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    name, password = str(form.get("name", ""))[:100], str(form.get("password", ""))[:300]
    presented = form.get("csrf")
    if not security.csrf_ok(
        request.cookies.get(LOGIN_COOKIE), presented if isinstance(presented, str) else None
    ):
        await audit(request, "csrf:login", "refused")
        raise web.HTTPForbidden(text="The form was not sent from this console (CSRF check).")
    outcome = await accounts.login(
        request.app[pool_key],
        request.app[passwords_key],
        name,
        password,
        client_address(request),
        datetime.now(UTC),
    )
    if isinstance(outcome, accounts.Refusal):
        token = security.new_token()
        if outcome.reason is accounts.LoginRefused.THROTTLED:
            minutes = max(1, round(outcome.retry_after / 60))
            error, status = f"Too many failed logins: try again in {minutes} minute(s).", 429
        else:
            error, status = "Wrong account name or password.", 401
        response = render(request, "login.html", {"login_csrf": token, "error": error}, status)
        if outcome.retry_after:
            response.headers["Retry-After"] = str(outcome.retry_after)
        _set_cookie(request, response, LOGIN_COOKIE, token)
        return response
    old = request.cookies.get(COOKIE)
    if old:
        await accounts.logout(request.app[pool_key], old)
    target = "password" if outcome.account.must_change_password else ""
    response = web.HTTPSeeOther(f"{PREFIX}{target}")
    _set_cookie(request, response, COOKIE, outcome.token)
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    raise response


async def logout(request: web.Request) -> web.Response:
    await accounts.logout(request.app[pool_key], request.cookies.get(COOKIE, ""))
    await audit(request, "logout", "ok")
    response = web.HTTPSeeOther(f"{PREFIX}login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


async def password_page(request: web.Request) -> web.Response:
    return render(request, "password.html", {"error": None})


async def change_password(request: web.Request) -> web.Response:
    form = await request.post()
    session = current(request)
    problem = await accounts.change_password(
        request.app[pool_key],
        request.app[passwords_key],
        session,
        request.cookies.get(COOKIE, ""),
        str(form.get("current", "")),
        str(form.get("new", "")),
    )
    if problem is None and form.get("new") != form.get("repeat"):
        problem = "the new password and its repetition differ"
    if problem:
        await audit(request, "password.change", "refused", detail=problem)
        return render(request, "password.html", {"error": problem}, 400)
    await audit(request, "password.change", "ok")
    raise web.HTTPSeeOther(PREFIX)


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(PREFIX + security.landing(current(request).role))


# --- intake queue ------------------------------------------------------------------------------

STATUS_CHOICES = ("open", "approved", "rejected", "all")


def _intake_filters(query: Any) -> dict[str, str]:
    return {
        k: query.get(k, "").strip()[:100]
        for k in ("q", "status", "regency", "profession", "facility")
    }


@requires(Permission.INTAKE_VIEW)
async def intake_list(request: web.Request) -> web.Response:
    f = _intake_filters(request.query)
    status = f["status"] if f["status"] in STATUS_CHOICES else "open"
    body = IntakeListRequest(
        status=None if status == "all" else status,
        regency=f["regency"] or None,
        profession=f["profession"] or None,
        facility=f["facility"] or None,
        search=f["q"] or None,
        limit=200,
    )
    reply = await request.app[services_key].ask(IDENTITY_RPC_INTAKE_LIST, body, IntakeListReply)
    if error_code(reply.error) is OperatorError.UNAVAILABLE:
        raise Unavailable(IDENTITY_RPC_INTAKE_LIST)
    return render(
        request,
        "intake_list.html",
        {
            "filters": f | {"status": status},
            "statuses": STATUS_CHOICES,
            "professions": PROFESSIONS,
            "items": reply.items,
            "error": _message(reply.error),
        },
        400 if reply.error else 200,
    )


def _intake_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text=f"No intake request {raw[:20]!r}.")
    return int(raw)


async def _intake_page(
    request: web.Request, intake_id: int, message: str | None = None, status: int = 200,
    error: str | None = None,
) -> web.Response:  # fmt: skip
    reply = await request.app[services_key].ask(
        IDENTITY_RPC_INTAKE_DETAIL,
        IntakeDetailRequest(intake_id=intake_id, by=current(request).name),
        IntakeDetailReply,
    )
    if reply.item is None:
        if error_code(reply.error) is OperatorError.NOT_FOUND:
            raise web.HTTPNotFound(text=_message(reply.error))
        raise Unavailable(IDENTITY_RPC_INTAKE_DETAIL)
    if message is None and error is None:
        await audit(request, "intake.view", "ok", target=f"intake:{intake_id}")
    return render(
        request,
        "intake_detail.html",
        {"item": reply.item, "matches": reply.matches, "message": message, "error": error},
        status,
    )


@requires(Permission.INTAKE_VIEW)
async def intake_detail(request: web.Request) -> web.Response:
    return await _intake_page(request, _intake_id(request))


@requires(Permission.INTAKE_DECIDE)
async def intake_decide(request: web.Request) -> web.Response:
    intake_id = _intake_id(request)
    form = await request.post()
    try:
        decision = IntakeDecision(str(form.get("decision", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="decision is approve or reject") from None
    reason = " ".join(str(form.get("reason", "")).split())[:MAX_REASON] or None
    target = f"intake:{intake_id}"
    if decision is IntakeDecision.REJECT and not reason:
        await audit(request, "intake.reject", "refused", target=target, detail="no reason")
        return await _intake_page(
            request,
            intake_id,
            status=400,
            error="A rejection needs a reason: it is told to the user.",
        )
    reply = await request.app[services_key].ask(
        IDENTITY_RPC_INTAKE_DECIDE,
        IntakeDecideRequest(
            intake_id=intake_id, decision=decision, reason=reason, by=current(request).name
        ),
        IntakeDecideReply,
    )
    action = f"intake.{decision.value}"
    if reply.error:
        code = error_code(reply.error)
        if code is OperatorError.UNAVAILABLE:
            raise Unavailable(IDENTITY_RPC_INTAKE_DECIDE)
        await audit(request, action, "refused", target=target, detail=reply.error)
        status = {"not_found": 404, "invalid": 400}.get(str(code), 409)
        return await _intake_page(request, intake_id, status=status, error=_message(reply.error))
    await audit(request, action, "ok", target=target, detail=reason)
    done = (
        "approved: the person is in the registry"
        if decision is IntakeDecision.APPROVE
        else "rejected"
    )
    return await _intake_page(
        request, intake_id, message=f"Request {intake_id} {done}; the user is told in the chat."
    )


# --- sessions, imports, desks ------------------------------------------------------------------


def _day(raw: str, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"{raw[:20]!r} is not a date YYYY-MM-DD") from None


async def _sessions_page(
    request: web.Request, message: str | None = None, error: str | None = None, status: int = 200
) -> web.Response:
    q = request.query
    today = jakarta_today()
    start = _day(q.get("from", ""), today)
    end = _day(q.get("to", ""), start + timedelta(days=13))
    filters = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "facility": q.get("facility", "").strip()[:32],
        "regency": q.get("regency", "").strip()[:100],
    }
    reply = await request.app[services_key].ask(
        SCHEDULER_RPC_SESSIONS,
        SessionsRequest(
            date_from=start,
            date_to=end,
            facility=filters["facility"] or None,
            regency=filters["regency"] or None,
            include_cancelled=q.get("cancelled") == "1",
        ),
        SessionsReply,
    )
    if error_code(reply.error) is OperatorError.UNAVAILABLE:
        raise Unavailable(SCHEDULER_RPC_SESSIONS)
    days: dict[date, list[Any]] = {}
    for s in reply.sessions:
        days.setdefault(s.date, []).append(s)
    totals = {
        d: {k: sum(getattr(s, k) for s in rows if s.status == "open")
            for k in ("capacity", "booked", "held", "free")}
        for d, rows in days.items()
    }  # fmt: skip
    return render(
        request,
        "sessions.html",
        {
            "filters": filters,
            "days": days,
            "totals": totals,
            "truncated": reply.truncated,
            "message": message,
            "error": error or _message(reply.error),
        },
        status,
    )


@requires(Permission.SESSIONS_VIEW)
async def sessions(request: web.Request) -> web.Response:
    return await _sessions_page(request)


@requires(Permission.SESSIONS_CANCEL)
async def session_cancel(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="No such session.")
    reply = await request.app[services_key].ask(
        SCHEDULER_RPC_SESSION_CANCEL,
        SessionCancelRequest(session_id=int(raw), by=current(request).name),
        SessionCancelReply,
        wait=SLOW_TIMEOUT,
    )
    target = f"session:{raw}"
    if reply.error:
        if error_code(reply.error) is OperatorError.UNAVAILABLE:
            raise Unavailable(SCHEDULER_RPC_SESSION_CANCEL)
        await audit(request, "session.cancel", "refused", target=target, detail=reply.error)
        return await _sessions_page(request, error=_message(reply.error), status=409)
    s = reply.session
    assert s is not None
    text = (
        f"Session {s.session_id} cancelled ({s.facility_name}, {s.date} {s.start:%H:%M}): "
        f"{reply.bookings} booking(s) cancelled and their people told; moved to a new session: "
        f"{reply.moved}; still looking (tried daily): {reply.waiting}; had another booking: "
        f"{reply.superseded}."
    )
    await audit(request, "session.cancel", "ok", target=target, detail=text)
    return await _sessions_page(request, message=text)


IMPORTS = {
    "facilities": (SCHEDULER_RPC_FACILITIES_IMPORT, "code,name,address,regency,province"),
    "sessions": (SCHEDULER_RPC_SESSIONS_IMPORT, "facility_code,date,start,end,capacity,vaccine"),
}


@requires(Permission.SESSIONS_IMPORT)
async def imports_page(request: web.Request) -> web.Response:
    context = {"imports": IMPORTS, "result": None, "kind": None, "error": None}
    return render(request, "imports.html", context)


@requires(Permission.SESSIONS_IMPORT)
async def upload(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in IMPORTS:
        raise web.HTTPNotFound(text="No such import.")
    form = await request.post()
    field = form.get("file")
    if not isinstance(field, web.FileField):
        raise web.HTTPBadRequest(text="Choose a CSV file to upload.")
    data = field.file.read(MAX_CSV_BYTES + 1)
    filename = (field.filename or "file.csv")[:100]
    context: dict[str, Any] = {"imports": IMPORTS, "kind": kind, "filename": filename}
    problem = None
    if len(data) > MAX_CSV_BYTES:
        problem = (
            f"{filename} is larger than {MAX_CSV_BYTES // 1024} KiB: split it, or use "
            f"`vaksin {kind} import` on a server"
        )
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            problem = f"line {line}: not UTF-8 text (save the file as 'CSV UTF-8')"
    if problem:
        await audit(request, f"import.{kind}", "refused", target=filename, detail=problem)
        return render(request, "imports.html", context | {"result": None, "error": problem}, 400)
    subject, _ = IMPORTS[kind]
    reply = await request.app[services_key].ask(
        subject,
        CsvImportRequest(csv=text, by=current(request).name),
        CsvImportReply,
        wait=SLOW_TIMEOUT,
    )
    if error_code(reply.error) is OperatorError.UNAVAILABLE:
        raise Unavailable(subject)
    outcome = "refused" if reply.error else "ok"
    detail = (
        f"{reply.bad_rows} bad row(s)"
        if reply.error
        else f"{reply.rows} rows: {reply.new} new, {reply.updated} updated, {reply.unchanged} unchanged"
    )
    await audit(request, f"import.{kind}", outcome, target=filename, detail=detail)
    return render(
        request,
        "imports.html",
        context | {"result": reply, "error": _message(reply.error)},
        422 if reply.error else 200,
    )


def _desk_url(settings: Settings) -> str:
    return os.environ.get("DESK_URL", "") or str(settings.runtime().get("desk_url", ""))


@requires(Permission.DESKS)
async def desks_page(request: web.Request) -> web.Response:
    return await _desks(request)


async def _desks(
    request: web.Request, added: DeskAddReply | None = None, error: str | None = None,
    status: int = 200,
) -> web.Response:  # fmt: skip
    reply = await request.app[services_key].ask(TICKETING_RPC_DESKS, DesksRequest(), DesksReply)
    url = _desk_url(request.app[settings_key])
    link = f"{url.split('#')[0]}#enrol={added.enrolment_code}" if added and url else None
    return render(
        request,
        "desks.html",
        {"desks": reply.desks, "added": added, "link": link, "error": error},
        status,
    )


@requires(Permission.DESKS)
async def desk_add(request: web.Request) -> web.Response:
    form = await request.post()
    facility = str(form.get("facility", "")).strip()[:32]
    name = " ".join(str(form.get("name", "")).split())[:100]
    if not facility or not name:
        return await _desks(
            request, error="Give the facility code and the desk's name.", status=400
        )
    reply = await request.app[services_key].ask(
        TICKETING_RPC_DESK_ADD,
        DeskAddRequest(facility_code=facility, name=name, by=current(request).name),
        DeskAddReply,
    )
    if reply.error or reply.desk is None:
        await audit(request, "desk.add", "refused", target=facility, detail=reply.error)
        return await _desks(request, error=_message(reply.error), status=409)
    await audit(request, "desk.add", "ok", target=f"desk:{reply.desk.desk_id}",
                detail=f"{facility} {name}")  # fmt: skip
    return await _desks(request, added=reply)


# --- figures and the audit log -----------------------------------------------------------------


@requires(Permission.FIGURES)
async def figures_page(request: web.Request) -> web.Response:
    figures = await request.app[figures_key].get()
    return render(request, "figures.html", {"figures": figures})


@requires(Permission.FIGURES)
async def figures_json(request: web.Request) -> web.Response:
    figures = await request.app[figures_key].get()
    return web.json_response(figures.as_json(), headers={"Cache-Control": "no-store"})


@requires(Permission.FIGURES)
async def figures_csv(request: web.Request) -> web.Response:
    name = request.match_info["table"]
    figures = await request.app[figures_key].get()
    table = figures.tables.get(name)
    if table is None:
        raise web.HTTPNotFound(text=f"No table {name[:40]!r}.")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    await audit(request, "figures.export", "ok", target=name)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{jakarta_today()}.csv"',
            "Cache-Control": "no-store",
        },
    )


@requires(Permission.AUDIT)
async def audit_page(request: web.Request) -> web.Response:
    account = request.query.get("account", "").strip()[:64] or None
    async with request.app[pool_key].acquire() as conn:
        entries = await repo.audit_entries(conn, account=account)
    return render(request, "audit.html", {"entries": entries, "account": account or ""})


def _static(path: Path, content_type: str) -> Handler:
    installed = path.is_file()  # once, at startup (`make console` installs the vendor files)

    async def serve(request: web.Request) -> web.StreamResponse:
        if not installed:
            raise web.HTTPNotFound(text=f"{path.name} is missing: run `make console`")
        return web.FileResponse(
            path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )

    return serve


def _wib(value: datetime | None) -> str:
    return value.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB") if value else "-"


def console_app(
    pool: asyncpg.Pool, services: Services, settings: Settings, passwords: Passwords
) -> web.Application:
    """The `/console/` sub-application: its middlewares guard only its own routes."""
    app = web.Application(middlewares=[protect, authenticate])
    app[pool_key] = pool
    app[services_key] = services
    app[settings_key] = settings
    app[passwords_key] = passwords
    app[figures_key] = FiguresCache(services)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(ROOT / "templates")),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["wib"] = _wib
    r = app.router
    r.add_get("/", home, name="home")
    r.add_get("/login", login_page, name="login")
    r.add_post("/login", login, name="login:post")
    r.add_post("/logout", logout, name="logout")
    r.add_get("/password", password_page, name="password")
    r.add_post("/password", change_password, name="password:post")
    r.add_get("/intake", intake_list, name="intake")
    r.add_get("/intake/{id}", intake_detail, name="intake:detail")
    r.add_post("/intake/{id}/decide", intake_decide, name="intake:decide")
    r.add_get("/sessions", sessions, name="sessions")
    r.add_post("/sessions/{id}/cancel", session_cancel, name="sessions:cancel")
    r.add_get("/imports", imports_page, name="imports")
    r.add_post("/imports/{kind}", upload, name="imports:upload")
    r.add_get("/desks", desks_page, name="desks")
    r.add_post("/desks", desk_add, name="desks:add")
    r.add_get("/figures", figures_page, name="figures")
    r.add_get("/figures.json", figures_json, name="figures:json")
    r.add_get("/figures/{table}.csv", figures_csv, name="figures:csv")
    r.add_get("/audit", audit_page, name="audit")
    for i, (name, (path, content_type)) in enumerate(FILES.items()):
        r.add_get(f"/static/{name}", _static(path, content_type), name=f"static:file{i}")
    return app


def add_console_routes(
    app: web.Application,
    pool: asyncpg.Pool,
    services: Services,
    settings: Settings,
    passwords: Passwords,
) -> None:
    app.add_subapp(PREFIX, console_app(pool, services, settings, passwords))

    async def to_console(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther(PREFIX)

    app.router.add_get("/console", to_console)
