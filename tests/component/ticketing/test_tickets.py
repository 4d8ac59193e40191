"""Tickets on the real database: issued once per booking with their two messages in the outbox, a
void booking never ticketed whatever the order its facts arrive in, what a check says on each
day, the dose-given fact leaving with the check-in, and the desk CLI's answers and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import pytest

from services.common.clock import WIB, jakarta_today
from services.common.contracts.channels import RouteReply
from services.common.contracts.identity import PersonCard
from services.common.contracts.scheduler import BookingConfirmed, Facility
from services.common.contracts.subjects import INGRESS_RPC_ROUTE
from services.common.contracts.ticketing import TicketStatus
from services.common.settings import Settings
from services.ticketing import cli, domain, handlers, repository, tickets
from services.ticketing.token import load_signing_key

pytestmark = pytest.mark.servers

CARD = PersonCard(found=True, masked_name="B**i S*******", masked_nik="320101**********")
NO_MEASUREMENTS = domain.Measurements()


def fact(day: date, dose: int = 1) -> BookingConfirmed:
    code = f"F{secrets.token_hex(3).upper()}"
    return BookingConfirmed(
        booking_id=secrets.randbelow(2**40) + 1,
        person_id=str(uuid.uuid4()),
        wa_id="6281234567890",
        lang="id",
        dose=dose,
        vaccine="CoronaVac",
        session_id=1,
        facility=Facility(
            code=code,
            name=f"Puskesmas {code}",
            address="Jl. Merdeka 1",
            regency="Kab. Bogor",
            province="Jawa Barat",
        ),
        date=day,
        start=time(8, 0),
        end=time(12, 0),
        occurred_at=datetime.now(UTC),
    )


def delivery(settings: Settings) -> tickets.Delivery:
    return tickets.Delivery("6281234567890", "id", settings.vaccine_video_url, 4)


async def issue(pool: asyncpg.Pool, settings: Settings, booking: BookingConfirmed):
    key = load_signing_key(settings.ticket_signing_key)
    return await tickets.issue(pool, booking, CARD, key, delivery(settings), datetime.now(UTC))


async def outbox_of(pool: asyncpg.Pool, marker: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT subject, payload FROM ticketing.outbox WHERE payload::text LIKE $1 ORDER BY id",
        f"%{marker}%",
    )


async def test_a_booking_gets_one_ticket_and_its_two_messages_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    booking = fact(jakarta_today() + timedelta(days=1))
    ticket = await issue(pool, settings, booking)
    assert ticket is not None and ticket.booking_id == booking.booking_id
    assert await issue(pool, settings, booking) is None  # a redelivered fact
    rows = await pool.fetch(
        "SELECT ticket_id FROM ticketing.ticket WHERE booking_id = $1", booking.booking_id
    )
    assert [r["ticket_id"] for r in rows] == [ticket.ticket_id]
    sent = await outbox_of(pool, ticket.ticket_id)
    kinds = [r["payload"]["message"]["kind"] for r in sent]
    assert kinds == ["image", "video"]
    image, video = (r["payload"] for r in sent)
    assert image["template"] == {"name": "ticket_ready", "lang": "id", "params": [ticket.code]}
    assert video.get("optional") is True
    assert all(r["subject"].startswith("notifier.cmd.send.") for r in sent)


async def test_a_booking_cancelled_before_its_fact_arrives_gets_no_ticket(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    booking = fact(jakarta_today() + timedelta(days=1))
    assert (
        await tickets.void(pool, booking.booking_id, "cancelled: user", datetime.now(UTC)) is None
    )
    assert await issue(pool, settings, booking) is None
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM ticketing.ticket WHERE booking_id = $1", booking.booking_id
        )
        == 0
    )


async def test_a_check_depends_on_the_day(pool: asyncpg.Pool, settings: Settings) -> None:
    day = jakarta_today() + timedelta(days=3)
    ticket = await issue(pool, settings, fact(day))
    assert ticket is not None
    key = load_signing_key(settings.ticket_signing_key)

    def at(d: date, hour: int) -> datetime:
        return datetime.combine(d, time(hour), WIB)

    async def status(now: datetime) -> TicketStatus:
        return (await tickets.check(pool, ticket.token, key, now)).status

    assert await status(at(day - timedelta(days=1), 23)) is TicketStatus.NOT_YET
    assert await status(at(day, 7)) is TicketStatus.VALID
    assert await status(at(day + timedelta(days=1), 0)) is TicketStatus.EXPIRED
    expired = await tickets.checkin(
        pool, ticket.token, key, by="t", via="cli", measured=NO_MEASUREMENTS, dose_given=True,
        now=at(day + timedelta(days=1), 8),
    )  # fmt: skip
    assert expired.status is TicketStatus.EXPIRED and expired.redeemed_at is None


async def test_checkin_records_measurements_and_sends_dose_given_once(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    day = jakarta_today() + timedelta(days=1)
    ticket = await issue(pool, settings, fact(day))
    assert ticket is not None
    key = load_signing_key(settings.ticket_signing_key)
    now = datetime.combine(day, time(9, 15), WIB)
    measured = domain.measurements("36.7", "125/82")
    done = await tickets.checkin(
        pool, ticket.token, key, by="desk-3", via="http", measured=measured, dose_given=True,
        now=now,
    )  # fmt: skip
    assert (done.status, done.redeemed_by, done.dose_given_at) == (
        TicketStatus.REDEEMED, "desk-3", now,
    )  # fmt: skip
    stored = await pool.fetchrow(
        "SELECT temperature_c, systolic, diastolic FROM ticketing.ticket WHERE ticket_id = $1",
        ticket.ticket_id,
    )
    assert (float(stored["temperature_c"]), stored["systolic"], stored["diastolic"]) == (
        36.7, 125, 82,
    )  # fmt: skip
    facts = [
        r for r in await outbox_of(pool, ticket.ticket_id) if r["subject"].startswith("ticketing")
    ]
    assert [r["subject"] for r in facts] == ["ticketing.evt.dose_given"]
    given = facts[0]["payload"]
    assert (given["booking_id"], given["dose"], given["given_on"]) == (
        ticket.booking_id, 1, day.isoformat(),
    )  # fmt: skip
    again = await tickets.checkin(
        pool, ticket.token, key, by="desk-4", via="http", measured=NO_MEASUREMENTS,
        dose_given=True, now=now,
    )  # fmt: skip
    assert again.status is TicketStatus.ALREADY_USED and again.redeemed_by == "desk-3"
    assert len(await outbox_of(pool, ticket.ticket_id)) == 3  # image, video, one dose_given


async def test_usable_tickets_leave_out_used_revoked_and_expired(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    booking = fact(jakarta_today() + timedelta(days=2))
    ticket = await issue(pool, settings, booking)
    assert ticket is not None
    [view] = await tickets.usable(pool, booking.person_id, "en", datetime.now(UTC))
    assert view.code == ticket.code and view.image.caption and ticket.code in view.image.caption
    assert "dose 1" in view.image.caption
    await tickets.void(pool, booking.booking_id, "rescheduled", datetime.now(UTC))
    assert await tickets.usable(pool, booking.person_id, "en", datetime.now(UTC)) == []


# --- the desk CLI ---------------------------------------------------------------------------


async def run_cli(settings: Settings, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run_ticket(settings, parser.parse_args(argv), out, err, io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


async def test_cli_exit_codes_follow_the_answer(pool: asyncpg.Pool, settings: Settings) -> None:
    today = jakarta_today()
    valid = await issue(pool, settings, fact(today))
    later = await issue(pool, settings, fact(today + timedelta(days=5)))
    past = await issue(pool, settings, fact(today - timedelta(days=1)))
    revoked_booking = fact(today)
    revoked = await issue(pool, settings, revoked_booking)
    assert valid and later and past and revoked
    await tickets.void(pool, revoked_booking.booking_id, "cancelled: user", datetime.now(UTC))

    code, out, _ = await run_cli(settings, "ticket", "verify", valid.token)
    assert code == 0 and out.startswith("VALID") and valid.code in out and "B**i S*******" in out
    assert (await run_cli(settings, "ticket", "verify", later.token))[0] == 7
    assert (await run_cli(settings, "ticket", "verify", past.token))[0] == 4
    assert (await run_cli(settings, "ticket", "verify", revoked.token))[0] == 5
    # A signature character changed (to another one: "AA" at the end was sometimes no change).
    forged = valid.token[:-10] + ("B" if valid.token[-10] != "B" else "C") + valid.token[-9:]
    assert forged != valid.token
    assert (await run_cli(settings, "ticket", "verify", forged))[0] == 3

    code, out, _ = await run_cli(
        settings, "checkin", "-", "--dose-given", "--temperature", "36.5", "--by", "desk-9",
        stdin=valid.token + "\n",
    )  # fmt: skip
    assert code == 0 and out.startswith("REDEEMED") and "desk-9" in out
    code, out, _ = await run_cli(settings, "checkin", valid.token, "--json")
    assert code == 6 and json.loads(out)["status"] == "already_used"
    assert json.loads(out)["redeemed_by"] == "desk-9"


async def test_cli_refuses_an_impossible_measurement_without_using_the_ticket(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    ticket = await issue(pool, settings, fact(jakarta_today()))
    assert ticket is not None
    code, _, err = await run_cli(settings, "checkin", ticket.token, "--temperature", "365")
    assert code == 1 and "temperature" in err
    assert (await run_cli(settings, "ticket", "verify", ticket.token))[0] == 0


async def test_a_void_waits_for_a_ticket_being_issued_and_revokes_it(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """A cancellation handled while the booking's ticket is being stored (not yet committed) must
    not slip past it: it waits for the issue and then revokes the ticket."""
    booking = fact(jakarta_today() + timedelta(days=1))
    async with pool.acquire() as issuing:
        transaction = issuing.transaction()
        await transaction.start()
        await repository.lock_booking(issuing, booking.booking_id)  # as tickets.issue does
        new = repository.NewTicket(
            ticket_id="race-ticket-" + secrets.token_hex(4), code=domain.new_code(),
            booking_id=booking.booking_id, person_id=booking.person_id, dose=1,
            vaccine="CoronaVac", facility_code=booking.facility.code,
            facility_name=booking.facility.name, facility_address=booking.facility.address,
            session_date=booking.date, start_time=booking.start, end_time=booking.end,
            masked_name="-", masked_nik=None, token="t", qr_png=b"png",
            expires_at=domain.expiry(booking.date),
        )  # fmt: skip
        assert await repository.insert_ticket(issuing, new, "notifier.cmd.send.0", "NOTIFIER", [])
        voiding = asyncio.create_task(
            tickets.void(pool, booking.booking_id, "cancelled: user", datetime.now(UTC))
        )
        await asyncio.sleep(0.3)
        assert not voiding.done()  # held back until the issue commits
        await transaction.commit()
    revoked = await asyncio.wait_for(voiding, 5)
    assert revoked is not None and revoked.ticket_id == new.ticket_id
    assert revoked.revoked_reason == "cancelled: user"
    assert await issue(pool, settings, booking) is None  # and a redelivery changes nothing


async def test_a_ticketed_or_void_booking_is_settled_before_any_work(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """What the consumer checks when identity cannot answer: such a fact need not wait."""
    booking = fact(jakarta_today() + timedelta(days=1))
    assert not await tickets.settled(pool, booking.booking_id)
    assert await issue(pool, settings, booking) is not None
    assert await tickets.settled(pool, booking.booking_id)
    voided = fact(jakarta_today() + timedelta(days=1))
    await tickets.void(pool, voided.booking_id, "cancelled: user", datetime.now(UTC))
    assert await tickets.settled(pool, voided.booking_id)


class Identity:
    """identity.rpc.person as the consumer's broker asks it: answering, or down (and the
    dialog's ingress.rpc.route, always answering WhatsApp)."""

    def __init__(self, card: PersonCard | None) -> None:
        self.card, self.asked = card, 0

    async def request(self, _: object, subject: str, **__: object) -> Answer:
        if subject == INGRESS_RPC_ROUTE:
            return Answer(RouteReply(channel="whatsapp").model_dump())
        self.asked += 1
        if self.card is None:
            raise TimeoutError("identity does not answer")
        return Answer(self.card.model_dump())


@dataclass
class Answer:
    body: dict[str, object]

    async def decode(self) -> dict[str, object]:
        return self.body


class Relay:
    def wake(self) -> None:
        pass


async def test_the_consumer_waits_for_identity_only_when_there_is_a_ticket_to_issue(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    key = load_signing_key(settings.ticket_signing_key)

    async def consume(booking: BookingConfirmed, identity: Identity) -> None:
        await handlers._issue(booking, identity, pool, settings, key, Relay())  # type: ignore[arg-type]

    voided = fact(jakarta_today() + timedelta(days=1))
    await tickets.void(pool, voided.booking_id, "cancelled: user", datetime.now(UTC))
    await consume(voided, Identity(None))  # settled: acked although identity is down
    booking = fact(jakarta_today() + timedelta(days=1))
    with pytest.raises(TimeoutError):  # retried later (handlers._retrying)
        await consume(booking, Identity(None))
    identity = Identity(CARD)
    await consume(booking, identity)
    await consume(booking, identity)  # redelivered: nothing more
    [row] = await pool.fetch(
        "SELECT ticket_id, masked_name FROM ticketing.ticket WHERE booking_id = $1",
        booking.booking_id,
    )
    assert row["masked_name"] == CARD.masked_name
    assert len(await outbox_of(pool, row["ticket_id"])) == 2
    assert identity.asked == 2


async def test_a_code_already_taken_is_drawn_again(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await issue(pool, settings, fact(jakarta_today() + timedelta(days=1)))
    assert first is not None
    draws = iter([first.code])
    new_code = domain.new_code
    monkeypatch.setattr(domain, "new_code", lambda: next(draws, None) or new_code())
    second = await issue(pool, settings, booking := fact(jakarta_today() + timedelta(days=1)))
    assert second is not None and second.booking_id == booking.booking_id
    assert second.code != first.code
    assert len(await outbox_of(pool, second.ticket_id)) == 2
