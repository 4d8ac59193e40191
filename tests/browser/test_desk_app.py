"""The facility desk app (/desk/) in a real chromium against the real ticketing service (real
NATS and Postgres): enrol with a one-time code, check a ticket in from a photo of its QR code
and from the camera (a fake video stream), be refused the second time, tell forged, foreign and
other facilities' tickets apart, work offline (the app opens, verifies signatures, queues
check-ins) and sync when back, with a conflict from another desk told after the sync, and be
refused once revoked."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from services.common.clock import jakarta_today
from services.common.contracts.identity import PersonCard
from services.common.contracts.scheduler import BookingConfirmed, Facility
from services.common.embedded import free_port
from services.common.service import ServiceHost
from services.common.settings import Settings
from services.ticketing import desks, qr, tickets
from services.ticketing import repository as repo
from services.ticketing.app import build_host
from services.ticketing.token import load_signing_key
from tests.browser.conftest import LoopThread, new_context
from tests.conftest import Servers

pytestmark = pytest.mark.servers

SIGNING_KEY = "dGVzdC10aWNrZXQtc2lnbmluZy1rZXktMzItYnl0ZXM"
CARD = PersonCard(found=True, masked_name="S*** R********", masked_nik="320101**********")


@dataclass
class DeskSite:
    """The ticketing service serving the desk app, and what a test seeds through it."""

    host: ServiceHost
    loop: LoopThread
    settings: Settings
    files: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host.port}/desk/"

    @property
    def pool(self):
        assert self.host.pool is not None
        return self.host.pool

    def facility(self) -> str:
        return f"F{secrets.token_hex(3).upper()}"

    def add_desk(self, facility: str, name: str) -> tuple[int, str]:
        new = self.loop.run(
            desks.add(
                self.pool,
                facility_code=facility,
                facility_name=f"Puskesmas {facility}",
                name=name,
                by="test",
                now=datetime.now(UTC),
            )
        )
        return new.desk.desk_id, new.enrolment_code

    def issue(self, facility: str, day: date | None = None) -> repo.Ticket:
        fact = BookingConfirmed(
            booking_id=secrets.randbelow(2**40) + 1,
            person_id=str(uuid.uuid4()),
            wa_id="6281234567890",
            lang="id",
            dose=1,
            vaccine="CoronaVac",
            session_id=1,
            facility=Facility(
                code=facility,
                name=f"Puskesmas {facility}",
                address="Jl. Merdeka 1",
                regency="Kab. Bogor",
                province="Jawa Barat",
            ),
            date=day or jakarta_today(),
            start=time(8, 0),
            end=time(12, 0),
            occurred_at=datetime.now(UTC),
        )
        key = load_signing_key(self.settings.ticket_signing_key)
        delivery = tickets.Delivery("6281234567890", "id", self.settings.vaccine_video_url, 4)
        ticket = self.loop.run(
            tickets.issue(self.pool, fact, CARD, key, delivery, datetime.now(UTC))
        )
        assert ticket is not None
        return ticket

    def ticket(self, ticket_id: str) -> repo.Ticket:
        found = self.loop.run(repo.find(self.pool, ticket_id))
        assert found is not None
        return found

    def revoke(self, desk_id: int) -> None:
        self.loop.run(desks.revoke(self.pool, desk_id, "test", datetime.now(UTC)))

    def qr_photo(self, text: str) -> Path:
        """A photo of a QR code: the ticket's PNG, on a grey ground, a little smaller."""
        path = self.files / f"qr-{secrets.token_hex(4)}.png"
        path.write_bytes(qr.render_png(text))
        code = Image.open(path).convert("L")
        photo = Image.new("L", (code.width + 200, code.height + 300), 200)
        photo.paste(code, (100, 150))
        photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)).save(path)
        return path


@pytest.fixture(scope="module")
def site(
    servers: Servers, service_loop: LoopThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeskSite]:
    files = tmp_path_factory.mktemp("desk")
    settings = Settings(
        nats_url=servers.nats_url,
        database_url=servers.database_url,
        data_dir=files,
        operator_token="test-operator-token",
        ticket_signing_key=SIGNING_KEY,
        health_port=free_port(),
        notifier_partitions=4,
        log_json=True,
    )
    host = build_host(settings)
    service_loop.run(host.start())
    yield DeskSite(host, service_loop, settings, files)
    service_loop.run(host.stop())


def enrol(page: Page, site: DeskSite, code: str) -> None:
    page.goto(site.url)
    page.fill("#enrol-code", code.lower())  # typed any old way
    page.click("#enrol-submit")
    expect(page.locator("#scan-view")).to_be_visible()


def scan_photo(page: Page, path: Path, status: str) -> None:
    expect(page.locator("#scan-view")).to_be_visible()
    page.set_input_files("#photo", str(path))
    expect(page.locator("#verdict")).to_have_attribute("data-status", status)


def check_in(page: Page, temperature: str = "36.6", pressure: tuple[str, str] = ("120", "80")):
    page.fill("#temperature", temperature)
    page.fill("#systolic", pressure[0])
    page.fill("#diastolic", pressure[1])
    page.click("#checkin-submit")


def pending(page: Page, count: int) -> None:
    expect(page.locator("#pending")).to_have_attribute("data-count", str(count), timeout=20_000)


def test_enrol_then_check_a_ticket_in_from_a_photo_and_be_refused_the_second_time(
    page: Page, browser: Browser, site: DeskSite, screenshot: Callable
) -> None:
    facility = site.facility()
    desk_id, code = site.add_desk(facility, "Meja 1")
    ticket = site.issue(facility)
    page.goto(site.url)
    expect(page.locator("#enrol-view")).to_be_visible()
    screenshot(page, "desk/1-enrol.png")
    enrol(page, site, code)
    expect(page.locator("#desk-name")).to_have_text("Meja 1")
    expect(page.locator("#pending")).to_have_text("0 menunggu sinkron")

    photo = site.qr_photo(ticket.token)
    scan_photo(page, photo, "valid")
    expect(page.locator("#verdict")).to_have_text("SAH")
    expect(page.locator("#t-name")).to_have_text("S*** R********")
    expect(page.locator("#t-nik")).to_have_text("320101**********")
    expect(page.locator("#t-code")).to_have_text(ticket.code)
    screenshot(page, "desk/2-valid.png")

    # a measurement out of range is refused on the screen, and nothing is sent
    check_in(page, temperature="365")
    expect(page.locator("#checkin-error")).to_contain_text("30 dan 45")
    assert site.ticket(ticket.ticket_id).redeemed_at is None

    check_in(page)
    expect(page.locator("#verdict")).to_have_attribute("data-status", "redeemed")
    expect(page.locator("#verdict")).to_have_text("BERHASIL CHECK-IN")
    screenshot(page, "desk/3-checked-in.png")
    stored = site.ticket(ticket.ticket_id)
    assert stored.redeemed_desk_id == desk_id and stored.redeemed_by == "Meja 1"
    assert stored.redeemed_via == "desk" and stored.dose_given_desk_id == desk_id
    assert (stored.temperature_c, stored.systolic, stored.diastolic) == (36.6, 120, 80)
    assert stored.dose_given_at is not None

    page.click("#next")
    scan_photo(page, photo, "already_used")
    expect(page.locator("#verdict")).to_have_text("SUDAH DIGUNAKAN")
    expect(page.locator("#used-by")).to_contain_text("Meja 1")
    expect(page.locator("#checkin-form")).to_be_hidden()
    screenshot(page, "desk/4-already-used.png")

    # English on request
    page.click("#lang")
    expect(page.locator("#verdict")).to_have_text("ALREADY USED")
    page.click("#lang")

    # the enrolment code was for one device only
    other = new_context(browser)
    try:
        second = other.new_page()
        second.goto(site.url)
        second.fill("#enrol-code", code)
        second.click("#enrol-submit")
        expect(second.locator("#enrol-error")).to_contain_text("sudah dipakai")
        expect(second.locator("#scan-view")).to_be_hidden()
    finally:
        other.close()


def forged(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["dose"] = 2
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


def test_forged_foreign_and_other_facilities_tickets_a_typed_code_and_a_revoked_desk(
    page: Page, site: DeskSite, screenshot: Callable
) -> None:
    facility = site.facility()
    desk_id, code = site.add_desk(facility, "Meja 2")
    ours, theirs = site.issue(facility), site.issue(site.facility())
    enrol(page, site, code)

    for text in (forged(ours.token), ours.token[:200], "https://example.org/not-a-ticket"):
        scan_photo(page, site.qr_photo(text), "forged")
        expect(page.locator("#verdict")).to_have_text("BUKAN TIKET KAMI")
        page.click("#next")
    screenshot(page, "desk/5-scan.png")

    scan_photo(page, site.qr_photo(theirs.token), "another_facility")
    expect(page.locator("#verdict")).to_have_text("FASKES LAIN")
    expect(page.locator("#verdict-detail")).to_contain_text(f"Puskesmas {theirs.facility_code}")
    expect(page.locator("#checkin-form")).to_be_hidden()
    page.click("#next")

    page.fill("#ticket-code", ours.code.lower())
    page.click("#code-check")
    expect(page.locator("#verdict")).to_have_attribute("data-status", "valid")
    page.uncheck("#dose-given")
    check_in(page)
    expect(page.locator("#verdict")).to_have_attribute("data-status", "redeemed")
    stored = site.ticket(ours.ticket_id)
    assert stored.redeemed_desk_id == desk_id and stored.dose_given_at is None
    assert site.ticket(theirs.ticket_id).redeemed_at is None

    site.revoke(desk_id)
    page.click("#next")
    page.set_input_files("#photo", str(site.qr_photo(site.issue(facility).token)))
    expect(page.locator("#revoked-view")).to_be_visible()
    expect(page.locator("#revoked-view")).to_contain_text("Meja ini sudah dicabut")


def test_offline_the_app_opens_verifies_and_queues_then_syncs_with_a_conflict(
    browser: Browser, site: DeskSite, screenshot: Callable
) -> None:
    facility = site.facility()
    desk_a, code_a = site.add_desk(facility, "Meja A")
    desk_b, code_b = site.add_desk(facility, "Meja B")
    both, only_a = site.issue(facility), site.issue(facility)
    a_context, b_context = new_context(browser), new_context(browser)
    try:
        a, b = a_context.new_page(), b_context.new_page()
        enrol(a, site, code_a)
        enrol(b, site, code_b)
        a.wait_for_function("navigator.serviceWorker.controller !== null")

        a_context.set_offline(True)
        a.reload()  # the app opens from its service worker
        expect(a.locator("#desk-name")).to_have_text("Meja A")
        expect(a.locator("#net")).to_have_text("Offline")
        scan_photo(a, site.qr_photo(both.token), "valid")
        expect(a.locator("#verdict")).to_have_text("SAH (diperiksa offline)")
        check_in(a)
        expect(a.locator("#verdict")).to_have_attribute("data-status", "queued")
        pending(a, 1)
        a.click("#next")
        scan_photo(a, site.qr_photo(only_a.token), "valid")
        check_in(a)
        pending(a, 2)
        expect(a.locator("#pending")).to_have_text("2 menunggu sinkron")
        a.click("#next")
        # scanned again on this device: it knows, even offline
        scan_photo(a, site.qr_photo(only_a.token), "already_used")
        a.click("#next")
        screenshot(a, "desk/6-offline-queue.png")
        a.reload()  # the queue survives a restart of the app
        pending(a, 2)

        # meanwhile desk B, online, checks the same person in first
        scan_photo(b, site.qr_photo(both.token), "valid")
        check_in(b)
        expect(b.locator("#verdict")).to_have_attribute("data-status", "redeemed")

        a_context.set_offline(False)
        a.evaluate("window.dispatchEvent(new Event('online'))")
        pending(a, 0)
        expect(a.locator("#sync-alert")).to_contain_text("1 check-in ditolak")
        conflict = a.locator("#history li[data-state=conflict]")
        expect(conflict).to_have_count(1)
        expect(conflict).to_contain_text("SUDAH DIGUNAKAN")
        expect(conflict).to_contain_text("Meja B")
        expect(a.locator("#history li[data-state=synced]")).to_have_count(1)
        screenshot(a, "desk/7-synced-with-conflict.png")
    finally:
        a_context.close()
        b_context.close()
    first, second = site.ticket(both.ticket_id), site.ticket(only_a.ticket_id)
    assert first.redeemed_desk_id == desk_b  # redeemed once, by the first to reach the server
    assert second.redeemed_desk_id == desk_a and second.redeemed_at is not None
    # judged and recorded at the time of the scan on the device, not of the sync
    assert second.redeemed_at < first.redeemed_at


def y4m(image: Image.Image, path: Path, frames: int = 5) -> Path:
    """A fake camera's video (YUV4MPEG2, 4:2:0, full range): the image in grey, repeated."""
    grey = image.convert("L")
    width, height = grey.size
    chroma = bytes([128]) * ((width // 2) * (height // 2))
    frame = b"FRAME\n" + grey.tobytes() + chroma + chroma
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    path.write_bytes(header + frame * frames)
    return path


def test_the_camera_reads_a_ticket(
    launch: Callable[..., Browser], site: DeskSite, tmp_path: Path
) -> None:
    facility = site.facility()
    _, code = site.add_desk(facility, "Meja Kamera")
    ticket = site.issue(facility)
    code_image = Image.open(site.qr_photo(ticket.token)).convert("L")
    scene = Image.new("L", (800, 600), 180)
    code_image.thumbnail((560, 560))
    scene.paste(code_image, ((800 - code_image.width) // 2, (600 - code_image.height) // 2))
    video = y4m(scene, tmp_path / "camera.y4m")
    camera = launch(
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    )
    context: BrowserContext = new_context(camera, permissions=["camera"])
    try:
        page = context.new_page()
        enrol(page, site, code)
        page.click("#camera-toggle")
        expect(page.locator("#verdict")).to_have_attribute("data-status", "valid", timeout=20_000)
        expect(page.locator("#camera-box")).to_be_hidden()  # one scan, then the camera stops
        check_in(page)
        expect(page.locator("#verdict")).to_have_attribute("data-status", "redeemed")
    finally:
        context.close()
    assert site.ticket(ticket.ticket_id).redeemed_at is not None


NO_ED25519_IN_WEBCRYPTO = """
const importKey = crypto.subtle.importKey.bind(crypto.subtle);
crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
  (algorithm && (algorithm.name || algorithm) === "Ed25519")
    ? Promise.reject(new DOMException("no Ed25519", "NotSupportedError"))
    : importKey(format, key, algorithm, ...rest);
"""


def test_without_ed25519_in_webcrypto_the_vendored_library_verifies_offline(
    context: BrowserContext, site: DeskSite
) -> None:
    facility = site.facility()
    _, code = site.add_desk(facility, "Meja Lama")
    ticket = site.issue(facility)
    context.add_init_script(NO_ED25519_IN_WEBCRYPTO)  # like Chrome before 137
    page = context.new_page()
    enrol(page, site, code)
    context.set_offline(True)  # the verdict is the device's own
    scan_photo(page, site.qr_photo(ticket.token), "valid")
    expect(page.locator("#verdict")).to_have_text("SAH (diperiksa offline)")
    expect(page.locator("#footer")).to_contain_text("noble")
    page.click("#next")
    scan_photo(page, site.qr_photo(forged(ticket.token)), "forged")
