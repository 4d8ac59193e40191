"""The operators' console (/console/) in a real chromium, in front of every real service on real
NATS and Postgres with the fake Graph API as Meta: sign in (a wrong password, then the throttle),
change the one-time password, work the intake queue (approve and reject; the user gets the
message in the chat; a second operator deciding the same request is told who was first), upload
a bad CSV (line-numbered problems, nothing imported) and good ones, cancel a session (its person
is told), and see that a viewer cannot act and a forged form is refused. Screenshots of the main
pages go to docs/console/ with BROWSER_SCREENSHOTS=docs."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from faststream.nats import NatsBroker
from playwright.sync_api import Browser, BrowserContext, Page, expect

from services.common.clock import jakarta_today
from services.common.contracts.identity import IntakeSubmitRequest, IntakeSubmitResult
from services.common.contracts.scheduler import (
    BookingReply,
    ConfirmRequest,
    HoldReply,
    HoldRequest,
)
from services.common.contracts.subjects import (
    IDENTITY_RPC_INTAKE_SUBMIT,
    SCHEDULER_RPC_CONFIRM,
    SCHEDULER_RPC_HOLD,
)
from services.console import accounts
from services.console import repository as console_repo
from services.console.app import build_host as build_console
from services.console.security import Passwords
from tests.browser.conftest import LoopThread, new_context
from tests.conftest import Servers, settings_for
from tests.e2e.conftest import (
    System,
    new_person,
    new_phone,
    start_whole_system,
    stop_whole_system,
)

pytestmark = pytest.mark.servers

FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
PASSWORD = "a long enough passphrase"
DESKTOP = {"width": 1280, "height": 900}


@dataclass
class Console:
    system: System
    loop: LoopThread
    port: int
    client: NatsBroker

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/console/"

    @property
    def pool(self) -> Any:
        return self.system.hosts["console"].pool

    def account(self, role: str, *, changed: bool = True) -> tuple[str, str]:
        """A new account of `role`: (name, password); its one-time password already changed
        unless `changed` is False."""
        name = f"{role}-{secrets.token_hex(3)}"
        new = self.loop.run(accounts.add(self.pool, FAST, name, role, "test"))
        if not changed:
            return name, new.password

        async def change() -> None:
            async with self.pool.acquire() as conn:
                await console_repo.set_password(
                    conn, new.account.id, FAST.hash(PASSWORD), must_change=False
                )

        self.loop.run(change())
        return name, PASSWORD

    def ask(self, body: Any, subject: str, reply: type) -> Any:
        async def ask() -> Any:
            answer = await self.client.request(body, subject, timeout=10)
            return reply.model_validate(await answer.decode())

        return self.loop.run(ask())

    def intake(self, name: str) -> tuple[int, str]:
        """An open intake request of a new number, as the chat submits it: (id, wa_id). The
        user has written to us (their 24-hour window is open, as after a chat's intake)."""
        person = new_person(name=name)
        self.loop.run(self.system.turn(person.phone, "halo"))
        result = self.ask(
            IntakeSubmitRequest(
                request_id=f"wamid.console-{secrets.token_hex(6)}",
                wa_id=person.phone,
                nik=person.nik,
                full_name=name,
                profession="perawat",
                facility_code="F3201001",
                lang="id",
            ),
            IDENTITY_RPC_INTAKE_SUBMIT,
            IntakeSubmitResult,
        )
        assert result.intake_id is not None, result
        return result.intake_id, person.phone

    def sent_to(self, wa_id: str) -> int:
        return len(self.system.fake.messages_to(wa_id))

    def news(self, wa_id: str, before: int) -> str:
        """The text of the next message to a user after the `before` they had."""
        sent = self.loop.run(self.system.fake.wait_for_messages(wa_id, before + 1, timeout=20))
        return json.dumps(sent[before]["body"], ensure_ascii=False)


@pytest.fixture(scope="module")
def console(
    servers: Servers, service_loop: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    base = settings_for(servers, tmp_path_factory.mktemp("console")).model_copy(
        update={"scheduler_job_seconds": 3600}
    )

    async def start() -> Console:
        system = await start_whole_system(
            base, console=lambda settings: build_console(settings, FAST)
        )
        client = NatsBroker(system.settings.nats_url)
        await client.connect()
        return Console(system, service_loop, system.hosts["console"].port, client)

    async def stop(console: Console) -> None:
        await console.client.stop()
        await stop_whole_system(console.system)

    running = service_loop.run(start(), timeout=60)
    yield running
    service_loop.run(stop(running), timeout=60)


@pytest.fixture
def desk(browser: Browser) -> Iterator[BrowserContext]:
    context = new_context(browser, viewport=DESKTOP, locale="en-GB")
    yield context
    context.close()


def sign_in(page: Page, console: Console, name: str, password: str) -> None:
    page.goto(console.url + "login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#login")


def test_a_wrong_password_is_refused_then_the_account_is_throttled(
    console: Console, desk: BrowserContext, screenshot: Callable[[Page, str], Path]
) -> None:
    name, password = console.account("viewer")
    page = desk.new_page()
    page.goto(console.url)  # no session: the login page
    expect(page).to_have_url(console.url + "login")
    screenshot(page, "console/login.png")
    for _ in range(5):
        sign_in(page, console, name, "not the password")
        expect(page.locator("#error")).to_have_text("Wrong account name or password.")
    sign_in(page, console, name, password)  # the right one, too late
    expect(page.locator("#error")).to_contain_text("Too many failed logins")
    expect(page.locator("#me")).to_have_count(0)


def test_an_operator_approves_and_rejects_requests_and_the_users_are_told(
    console: Console, browser: Browser, desk: BrowserContext,
    screenshot: Callable[[Page, str], Path],
) -> None:  # fmt: skip
    approved_id, approved_wa = console.intake("Dewi Lestari")
    rejected_id, rejected_wa = console.intake("Rina Wulandari")
    name, one_time = console.account("intake", changed=False)
    page = desk.new_page()
    sign_in(page, console, name, one_time)
    expect(page.locator("#must-change")).to_be_visible()  # the one-time password first
    page.fill("#current", one_time)
    page.fill("#new", PASSWORD)
    page.fill("#repeat", PASSWORD)
    page.click("#change")
    expect(page).to_have_url(console.url + "intake")
    page.fill("#q", "Lestari")
    page.click("#filter")
    rows = page.locator("#intake-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("D*** L******")  # masked in the list
    expect(page.locator("#intake-table")).not_to_contain_text("Dewi Lestari")
    page.fill("#q", "")
    page.click("#filter")
    screenshot(page, "console/intake-queue.png")
    page.goto(f"{console.url}intake/{approved_id}")
    expect(page.locator("#full-name")).to_have_text("Dewi Lestari")
    expect(page.locator("#nik")).to_contain_text("**********")
    screenshot(page, "console/intake-request.png")

    # A second operator has the same request open and decides after the first.
    other_name, _ = console.account("intake")
    other = new_context(browser, viewport=DESKTOP, locale="en-GB")
    other_page = other.new_page()
    sign_in(other_page, console, other_name, PASSWORD)
    other_page.goto(f"{console.url}intake/{approved_id}")

    before = console.sent_to(approved_wa)
    page.click("#approve")
    expect(page.locator("#message")).to_contain_text(f"Request {approved_id} approved")
    expect(page.locator("#status")).to_have_text("approved")
    other_page.fill("#reason", "tidak terdaftar")
    other_page.click("#reject")
    expect(other_page.locator("#error")).to_contain_text(f"already approved (by {name}")
    expect(other_page.locator("#status")).to_have_text("approved")
    other.close()
    assert "*disetujui*" in console.news(approved_wa, before)

    page.goto(f"{console.url}intake/{rejected_id}")
    page.click("#reject")  # no reason: refused, still open
    expect(page.locator("#error")).to_contain_text("needs a reason")
    expect(page.locator("#status")).to_have_text("open")
    page.fill("#reason", "Bukan tenaga kesehatan di fasilitas ini")
    before = console.sent_to(rejected_wa)
    page.click("#reject")
    expect(page.locator("#status")).to_have_text("rejected")
    news = console.news(rejected_wa, before)
    assert "*tidak dapat disetujui*" in news and "Bukan tenaga kesehatan di fasilitas ini" in news


def test_csv_uploads_and_a_cancelled_session_with_its_person_told(
    console: Console, desk: BrowserContext, tmp_path: Path,
    screenshot: Callable[[Page, str], Path],
) -> None:  # fmt: skip
    code = f"C{secrets.token_hex(4).upper()}"
    day = (jakarta_today() + timedelta(days=2)).isoformat()
    bad = tmp_path / "facilities-bad.csv"
    bad.write_text(
        "code,name,address,regency,province\n"
        f"{code},Puskesmas Konsol,Jl. Satu 1,Kab. Konsol,Jawa Barat\n"
        f"X{code},,Jl. Dua 2,Kab. Konsol,Jawa Barat\n"
    )
    good = tmp_path / "facilities.csv"
    good.write_text(bad.read_text().rsplit(f"X{code}", 1)[0])
    sessions = tmp_path / "sessions.csv"
    sessions.write_text(
        f"facility_code,date,start,end,capacity,vaccine\n{code},{day},08:00,12:00,20,CoronaVac\n"
    )
    name, password = console.account("scheduler")
    page = desk.new_page()
    sign_in(page, console, name, password)
    page.goto(console.url + "imports")
    page.set_input_files("#file-facilities", bad)
    page.click("#submit-facilities")
    expect(page.locator("#error")).to_contain_text("nothing imported")
    expect(page.locator("#problems tbody tr")).to_have_count(1)
    expect(page.locator("#problems tbody tr").first).to_contain_text("3")
    expect(page.locator("#problems tbody tr").first).to_contain_text("name: empty")
    screenshot(page, "console/upload-refused.png")
    page.goto(f"{console.url}sessions?facility={code}&to={day}")
    expect(page.locator("#empty")).to_be_visible()
    page.goto(console.url + "imports")
    page.set_input_files("#file-facilities", good)
    page.click("#submit-facilities")
    expect(page.locator("#result")).to_contain_text("imported 1 facilities: 1 new")
    page.set_input_files("#file-sessions", sessions)
    page.click("#submit-sessions")
    expect(page.locator("#result")).to_contain_text("imported 1 sessions: 1 new")

    # Somebody books a seat in the chat (here: through the scheduler, as the dialog does).
    page.goto(f"{console.url}sessions?facility={code}&to={day}")
    session_id = int(
        page.locator("tr[data-session-id]").first.get_attribute("data-session-id") or 0
    )
    wa_id, person_id = new_phone(), f"person-{secrets.token_hex(6)}"
    console.loop.run(console.system.turn(wa_id, "halo"))  # they write to us first
    hold = console.ask(
        HoldRequest(request_id=f"wamid.{secrets.token_hex(6)}", person_id=person_id,
                    wa_id=wa_id, lang="id", session_id=session_id),
        SCHEDULER_RPC_HOLD, HoldReply,
    )  # fmt: skip
    assert hold.hold is not None, hold.error
    booked = console.ask(
        ConfirmRequest(request_id=f"wamid.{secrets.token_hex(6)}", hold_id=hold.hold.hold_id,
                       person_id=person_id),
        SCHEDULER_RPC_CONFIRM, BookingReply,
    )  # fmt: skip
    assert booked.error is None, booked.error
    page.reload()
    row = page.locator(f'tr[data-session-id="{session_id}"]')
    expect(row.locator(".booked")).to_have_text("1")
    expect(row.locator(".free")).to_have_text("19")
    screenshot(page, "console/sessions.png")
    before = console.sent_to(wa_id)
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("form.cancel button").click()
    expect(page.locator("#message")).to_contain_text(f"Session {session_id} cancelled")
    expect(page.locator("#message")).to_contain_text("1 booking(s) cancelled")
    assert "dibatalkan" in console.news(wa_id, before)  # the person is told


def test_a_viewer_sees_the_figures_but_cannot_act_and_a_forged_form_is_refused(
    console: Console, desk: BrowserContext, screenshot: Callable[[Page, str], Path]
) -> None:
    name, password = console.account("viewer")
    page = desk.new_page()
    sign_in(page, console, name, password)
    expect(page).to_have_url(console.url + "figures")
    expect(page.locator('.card[data-key="registered"] .value')).not_to_have_text(
        "\u2013"
    )  # a dash: not answering
    expect(page.locator("#chart-by-day canvas")).to_have_count(1)  # uPlot drew it
    expect(page.locator("body")).to_have_attribute("data-refreshed", "1")
    expect(page.locator('.figure-table[data-table="campaign_by_day"]')).to_be_visible()
    csv = page.request.get(console.url + "figures/campaign_by_day.csv")
    assert csv.status == 200 and csv.text().startswith("day,registered,verified")
    screenshot(page, "console/figures.png")
    expect(page.locator("#nav-intake")).to_have_count(0)
    page.goto(console.url + "intake")
    expect(page.locator("h1")).to_have_text("Forbidden")
    token = page.evaluate("document.querySelector('input[name=csrf]').value")
    refused = page.request.post(console.url + "sessions/1/cancel", form={"csrf": token})
    assert refused.status == 403 and "may not" in refused.text()
    forged = page.request.post(console.url + "logout", form={"csrf": "forged"})
    assert forged.status == 403 and "CSRF" in forged.text()
    page.goto(console.url + "figures")
    expect(page.locator("#me")).to_contain_text(name)  # still signed in
