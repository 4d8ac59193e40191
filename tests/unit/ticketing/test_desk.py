"""Pure rules of facility desks: enrolment codes and credentials, typed ticket codes, the time an
offline check-in is judged at, the rate limit, and the enrolment QR code drawn in a terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from PIL import Image

from services.ticketing import desk_api, desk_cli, domain


def test_enrolment_codes_are_random_readable_and_read_back_however_typed() -> None:
    codes = {domain.new_enrolment_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4]
        assert set("".join(groups)) <= set(domain.CODE_ALPHABET)
        assert domain.enrolment_code(code.lower().replace("-", " ")) == code.replace("-", "")
    for bad in ("", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMN-P", "ABCD-EFGH-JKM0", "ABCD_EFGH_JKMN"):
        assert domain.enrolment_code(bad) is None, bad


def test_credentials_are_long_random_and_stored_as_their_digest() -> None:
    first, second = domain.new_desk_credential(), domain.new_desk_credential()
    assert first != second and first.startswith("vkd_") and len(first) >= 47
    assert domain.digest(first) != domain.digest(second) and len(domain.digest(first)) == 32


def test_typed_ticket_codes() -> None:
    assert domain.ticket_code(" 7k3m x9qp ") == "7K3MX9QP"
    for bad in ("7K3MX9Q", "7K3MX9QP1", "0K3MX9QP", "7K3MX9Q!"):
        assert domain.ticket_code(bad) is None


NOW = datetime(2021, 1, 14, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("scanned", "judged"),
    [
        (None, NOW),
        (NOW - timedelta(hours=20), NOW - timedelta(hours=20)),  # queued yesterday
        (NOW - domain.OFFLINE_WINDOW, NOW - domain.OFFLINE_WINDOW),
        (NOW - domain.OFFLINE_WINDOW - timedelta(seconds=1), NOW),  # too old to trust
        (NOW + timedelta(minutes=5), NOW),  # a clock ahead
    ],
)
def test_an_offline_check_in_is_judged_at_its_scan_within_the_window(scanned, judged) -> None:
    assert domain.judged_at(scanned, NOW) == judged


def test_the_rate_limit_lets_a_burst_through_then_the_rate() -> None:
    limit = desk_api.RateLimit(rate=1000.0, burst=3)
    assert [limit.retry_after("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.retry_after("a") > 0  # the burst is spent
    assert limit.retry_after("b") == 0.0  # per key
    slow = desk_api.RateLimit(rate=0.5, burst=1)
    assert slow.retry_after("x") == 0.0
    assert 1.5 < slow.retry_after("x") <= 2.0  # one more in two seconds
    small = desk_api.RateLimit(rate=1.0, burst=1, max_keys=2)
    for key in "abc":
        small.retry_after(key)
    assert small.retry_after("a") == 0.0  # forgotten: the oldest key went first


def test_the_terminal_qr_code_decodes_to_the_enrolment_link() -> None:
    link = desk_cli.enrolment_link("http://127.0.0.1:8087/desk/", "ABCD-EFGH-JKMN")
    assert link == "http://127.0.0.1:8087/desk/#enrol=ABCD-EFGH-JKMN"
    lines = desk_cli.terminal_qr(link, ansi=False).splitlines()
    top = {" ": 0, "▀": 1, "▄": 0, "█": 1}
    bottom = {" ": 0, "▀": 0, "▄": 1, "█": 1}
    rows = []
    for line in lines:
        rows += [[top[c] for c in line], [bottom[c] for c in line]]
    scale = 6
    image = Image.new("L", (len(rows[0]) * scale, len(rows) * scale), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                image.paste(0, (x * scale, y * scale, (x + 1) * scale, (y + 1) * scale))
    [read] = zxingcpp.read_barcodes(image)
    assert read.text == link
    assert "\x1b[30;47m" in desk_cli.terminal_qr(link, ansi=True)
