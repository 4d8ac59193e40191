"""The chat simulator (/simulator/ on the local fake Graph API) in a real chromium, in front of
every real service on real NATS and Postgres: a registered health worker goes from `VAKSIN` to the
QR ticket image and the video link by typing and tapping only what a user would; a second user
chats side by side without their messages mixing; a bad number is refused on the page."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from services.common.clock import jakarta_today
from tests.browser.conftest import LoopThread, new_context
from tests.conftest import Servers, settings_for
from tests.e2e.conftest import System, new_person, start_whole_system, stop_whole_system

pytestmark = pytest.mark.servers

# The happy path's taps after the suffix: no condition applies, then confirm the place and time
# offered with a seat held (five user turns in all).
AFTER_SUFFIX = ("scr.none", "slot.ok")


@dataclass
class Simulated:
    system: System
    loop: LoopThread

    @property
    def url(self) -> str:
        return self.system.fake.base_url.rsplit("/", 1)[0] + "/simulator/"


@pytest.fixture(scope="module")
def simulated(
    servers: Servers, service_loop: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Simulated]:
    base = settings_for(servers, tmp_path_factory.mktemp("simulator"))

    system = service_loop.run(start_whole_system(base), timeout=60)
    yield Simulated(system, service_loop)
    service_loop.run(stop_whole_system(system), timeout=60)


def chat_as(page: Page, phone: str, name: str) -> Locator:
    page.fill("#phone", phone)
    page.fill("#name", name)
    page.click("#new-chat button[type=submit]")
    chat = page.locator(f'.chat[data-wa-id="{phone}"]')
    expect(chat).to_have_attribute("data-ready", "true")
    return chat


def answered(chat: Locator, action: Callable[[], None]) -> Locator:
    """Do something in the chat and wait for the bot's next message."""
    before = chat.locator(".msg.bot").count()
    action()
    newest = chat.locator(".msg.bot").nth(before)
    expect(newest).to_be_visible()
    return newest


def write(chat: Locator, text: str) -> Locator:
    def send() -> None:
        chat.locator(".text").fill(text)
        chat.locator(".text").press("Enter")

    return answered(chat, send)


def tap(chat: Locator, reply_id: str) -> Locator:
    return answered(chat, lambda: chat.locator(f'[data-reply-id="{reply_id}"]').last.click())


def test_a_health_worker_goes_from_vaksin_to_the_ticket_by_tapping(
    simulated: Simulated, browser: Browser, tmp_path: Path, screenshot: Callable[..., Path]
) -> None:
    person = new_person("Rina Kartika")
    facility = f"F{secrets.randbelow(10**6):06d}"
    tomorrow = jakarta_today() + timedelta(days=1)
    person = person.__class__(person.nik, person.name, person.phone, facility_code=facility)
    simulated.loop.run(simulated.system.register(person, tmp=tmp_path))
    simulated.loop.run(
        simulated.system.add_facility(facility, tmp_path, [(tomorrow, "08:00", "12:00", 50)])
    )
    context = new_context(browser, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(simulated.url)
    chat = chat_as(page, person.phone, person.name)

    expect(write(chat, "VAKSIN")).to_contain_text("tenaga kesehatan")
    tap(chat, "nakes.yes")
    expect(write(chat, person.suffix)).to_contain_text("terverifikasi")
    for reply_id in AFTER_SUFFIX:
        tap(chat, reply_id)
    ticket = chat.locator(".msg.bot img.media")
    expect(ticket).to_be_visible(timeout=20_000)
    expect(chat.locator(".msg.bot a.media.video")).to_be_visible(timeout=20_000)
    # the image is the QR the notifier uploaded, served back by the fake
    assert ticket.evaluate("img => img.naturalWidth") > 100
    expect(chat.locator(".msg.bot").filter(has_text="Kode tiket")).to_be_visible()
    screenshot(page, "simulator.png")
    context.close()


def test_two_users_chat_side_by_side_and_a_bad_number_is_refused(
    simulated: Simulated, browser: Browser
) -> None:
    context = new_context(browser, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(simulated.url)
    page.fill("#phone", "12")
    page.click("#new-chat button[type=submit]")
    expect(page.locator("#new-chat-error")).to_contain_text("8 to 15 digits")

    first, second = new_person(), new_person()  # not in the registry: both are offered intake
    left, right = chat_as(page, first.phone, "Kiri"), chat_as(page, second.phone, "Kanan")
    write(left, "VAKSIN")
    write(right, "EN")
    expect(right.locator(".msg.bot").last).to_contain_text("English")
    expect(left.locator(".msg.bot")).to_have_count(1)  # nothing of the other user's
    expect(left.locator(".msg.bot").first).to_contain_text("tenaga kesehatan")
    context.close()
