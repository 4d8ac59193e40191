"""Dose 2 over real NATS and Postgres: ticketing's `dose_given` (published to the TICKETING stream
as ticketing will) makes the scheduler book dose 2 at the same facility within the vaccine's
interval and announce it; with no free seat in the window it says so, keeps trying, and announces
the booking once a session appears (sessions import wakes it); a repeated event books once."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.common.contracts.notifier import SendMessage
from services.common.contracts.scheduler import BookingConfirmed, BookingsRequest
from services.common.contracts.streams import TICKETING
from services.common.contracts.subjects import TICKETING_EVT_DOSE_GIVEN
from services.common.contracts.ticketing import DoseGiven
from services.common.settings import Settings
from services.scheduler import jobs
from services.scheduler.cli import import_sessions_file

from .conftest import Person, Place, Scheduler, confirm_request, in_days, today, wait_for

pytestmark = pytest.mark.servers


async def booked_dose_1(scheduler: Scheduler, place: Place, person: Person) -> int:
    held = (await scheduler.ask(place.offer(person))).hold
    return (await scheduler.ask(confirm_request(person, held.hold_id))).booking.booking_id


async def dose_given(
    scheduler: Scheduler, booking_id: int, person: Person, given_on: date
) -> DoseGiven:
    event = DoseGiven(
        booking_id=booking_id,
        person_id=person.person_id,
        dose=1,
        given_on=given_on,
        ticket_id=f"T-{secrets.token_hex(3)}",
        occurred_at=datetime.now(UTC),
    )
    await scheduler.client.publish(
        event,
        TICKETING_EVT_DOSE_GIVEN,
        stream=TICKETING.name,
        headers={"Nats-Msg-Id": f"redeemed-{secrets.token_hex(6)}"},
    )
    return event


async def dose_2_of(pool: asyncpg.Pool, person: Person) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """SELECT b.id, s.day, s.vaccine, s.facility_code FROM scheduler.booking b
           JOIN scheduler.session s ON s.id = b.session_id
           WHERE b.person_id = $1 AND b.dose = 2 AND b.status = 'active'""",
        person.person_id,
    )


async def plan_of(pool: asyncpg.Pool, person: Person) -> asyncpg.Record:
    return await pool.fetchrow(
        """SELECT id, status, earliest, latest, next_attempt_at, told_waiting
           FROM scheduler.auto_booking WHERE person_id = $1""",
        person.person_id,
    )


async def test_dose_given_books_dose_2_at_the_interval_and_announces_it(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place
) -> None:
    await place.session(in_days(1))
    await place.session(in_days(13))  # too early for dose 2
    await place.session(in_days(14), vaccine="AstraZeneca")  # another vaccine
    expected = await place.session(in_days(15), "10:00")
    await place.session(in_days(16))
    person = Person(lang="en")
    dose_1 = await booked_dose_1(scheduler, place, person)
    await dose_given(scheduler, dose_1, person, given_on=today())

    found = await wait_for(lambda: dose_2_of(pool, person), lambda row: row is not None)
    assert found is not None
    assert (found["day"], found["vaccine"], found["facility_code"]) == (
        in_days(15),
        "CoronaVac",
        place.code,
    )
    plan = await plan_of(pool, person)
    assert (plan["status"], plan["earliest"], plan["latest"]) == (
        "booked",
        in_days(14),
        in_days(28),
    )
    assert await pool.fetchval("SELECT status FROM scheduler.booking WHERE id = $1", dose_1) == (
        "done"
    )
    [event] = [
        e for e in await scheduler.events(found["id"]) if e.body["booking_id"] == found["id"]
    ]
    fact = BookingConfirmed.model_validate(event.body)
    assert (fact.dose, fact.session_id, fact.wa_id) == (2, expected, person.wa_id)
    [notice] = await scheduler.sends(f"scheduler:dose2.booked:{found['id']}")
    sent = SendMessage.model_validate(notice.body)
    assert sent.to == person.wa_id
    assert "second dose" in sent.message.body and place.name in sent.message.body
    assert sent.template is not None and sent.template.name == "dose2_scheduled"
    assert sent.template.lang == "en"
    assert sent.template.params[0] == place.name
    assert in_days(15).strftime("%B") in sent.template.params[1]
    status = await scheduler.ask(BookingsRequest(person_id=person.person_id))
    assert [(b.dose, b.session_id) for b in status.bookings] == [(2, expected)]


async def test_a_repeated_dose_given_books_once(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place
) -> None:
    await place.session(in_days(1))
    await place.session(in_days(14), capacity=5)
    person = Person()
    dose_1 = await booked_dose_1(scheduler, place, person)
    for _ in range(3):  # redelivered, or published again by ticketing under another id
        await dose_given(scheduler, dose_1, person, given_on=today())
    await wait_for(lambda: dose_2_of(pool, person), lambda row: row is not None)
    await scheduler.sends("scheduler:dose2.booked:")  # the first one's announcement is out
    count = await pool.fetchval(
        "SELECT count(*) FROM scheduler.booking WHERE person_id = $1 AND dose = 2",
        person.person_id,
    )
    plans = await pool.fetchval(
        "SELECT count(*) FROM scheduler.auto_booking WHERE person_id = $1", person.person_id
    )
    assert (count, plans) == (1, 1)


async def test_no_seat_in_the_window_says_so_keeps_trying_and_announces_when_found(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place, settings: Settings, tmp_path: Path
) -> None:
    await place.session(in_days(1))
    await place.session(in_days(20), capacity=0)  # in the window, but full
    await place.session(in_days(29))  # after the window
    person = Person()
    dose_1 = await booked_dose_1(scheduler, place, person)
    await dose_given(scheduler, dose_1, person, given_on=today())
    [waiting] = await scheduler.sends("scheduler:dose2.waiting:")
    plan = await wait_for(lambda: plan_of(pool, person), lambda p: p and p["told_waiting"])
    assert waiting.body["command_id"] == f"scheduler:dose2.waiting:{plan['id']}"
    assert waiting.body["template"]["name"] == "dose2_waiting"
    assert "setiap hari" in waiting.body["message"]["body"]
    assert plan["status"] == "waiting"
    retry_in = plan["next_attempt_at"] - datetime.now(UTC)
    assert timedelta(hours=23) < retry_in <= timedelta(hours=24)
    # Not due yet: the periodic job leaves it alone.
    await jobs.run_due_plans(pool, settings, datetime.now(UTC))
    assert (await plan_of(pool, person))["next_attempt_at"] == plan["next_attempt_at"]

    # The facility adds a session in the window: the import wakes the plan, the job books it.
    csv = tmp_path / "sessions.csv"
    csv.write_text(
        "facility_code,date,start,end,capacity,vaccine\n"
        f"{place.code},{in_days(21).isoformat()},08:00,12:00,3,CoronaVac\n"
    )
    out = io.StringIO()
    assert await import_sessions_file(settings, csv, out=out, err=io.StringIO()) == 0
    assert "1 automatic booking(s) waiting for a seat will try again now" in out.getvalue()
    assert await jobs.run_due_plans(pool, settings, datetime.now(UTC)) >= 1
    found = await dose_2_of(pool, person)
    assert found is not None and found["day"] == in_days(21)
    assert (await plan_of(pool, person))["status"] == "booked"
    [announced] = await scheduler.sends(f"scheduler:dose2.booked:{found['id']}")
    assert announced.body["to"] == person.wa_id
    # Told once that we keep looking, never again.
    assert len(await scheduler.sends("scheduler:dose2.waiting:" + str(plan["id"]))) == 1


async def test_the_interval_is_configured_per_vaccine_and_a_passed_window_is_said(
    scheduler: Scheduler, pool: asyncpg.Pool, place: Place, settings: Settings
) -> None:
    await place.session(in_days(1), vaccine="AstraZeneca")
    person = Person()
    dose_1 = await booked_dose_1(scheduler, place, person)
    custom = settings.model_copy(update={"scheduler_dose_intervals": {"astrazeneca": (56, 84)}})
    given_on = today() - timedelta(days=90)  # recorded late: the whole window has passed
    event = DoseGiven(
        booking_id=dose_1,
        person_id=person.person_id,
        dose=1,
        given_on=given_on,
        occurred_at=datetime.now(UTC),
    )
    plan_id = await jobs.record_dose_given(pool, event, custom)
    assert plan_id is not None
    plan = await plan_of(pool, person)
    assert (plan["earliest"], plan["latest"]) == (
        given_on + timedelta(days=56),
        given_on + timedelta(days=84),
    )
    outcome = await jobs.attempt_plan(pool, plan_id, custom, datetime.now(UTC))
    assert outcome is jobs.Attempt.MISSED
    [missed] = await scheduler.sends(f"scheduler:dose2.missed:{plan_id}")
    assert missed.body["template"]["name"] == "appointment_not_found"
    assert "119" in missed.body["message"]["body"]
