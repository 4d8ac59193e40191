"""The day-before reminder: sent once per booking, with two scheduler instances running their
jobs at the same time and across a restart, through the notifier with an approved template (the
24-hour window is likely closed by then)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import time

import asyncpg
import pytest

from services.common.contracts.notifier import SendMessage
from services.common.contracts.scheduler import CancelRequest
from services.common.settings import Settings

from .conftest import (
    Person,
    Place,
    Scheduler,
    confirm_request,
    hold_request,
    in_days,
    rid,
    start_scheduler,
)

pytestmark = pytest.mark.servers

FAST = {"scheduler_job_seconds": 0.1, "scheduler_reminder_time": time(0, 0)}  # due at once


async def booked(scheduler: Scheduler, session_id: int, person: Person) -> int:
    held = (await scheduler.ask(hold_request(person, session_id))).hold
    return (await scheduler.ask(confirm_request(person, held.hold_id))).booking.booking_id


async def test_a_reminder_is_sent_once_with_two_instances_and_across_a_restart(
    scheduler: Scheduler, settings: Settings, pool: asyncpg.Pool, place: Place
) -> None:
    tomorrow = await place.session(in_days(1), "09:00", capacity=50)
    later = await place.session(in_days(2), capacity=5)
    people = [Person(lang="en" if i % 2 else "id") for i in range(30)]
    due = [await booked(scheduler, tomorrow, p) for p in people]
    not_yet = await booked(scheduler, later, Person())
    cancelled_person = Person()
    cancelled = await booked(scheduler, tomorrow, cancelled_person)
    await scheduler.ask(CancelRequest(request_id=rid(), person_id=cancelled_person.person_id))

    first, second = await asyncio.gather(
        start_scheduler(settings, **FAST), start_scheduler(settings, **FAST)
    )
    try:
        await asyncio.sleep(1.5)  # a dozen rounds of both instances' reminder jobs
    finally:
        await asyncio.gather(first.stop(), second.stop())
    restarted = await start_scheduler(settings, **FAST)
    try:
        await asyncio.sleep(0.5)
    finally:
        await restarted.stop()

    sends = await scheduler.sends("scheduler:reminder:", count=len(due))
    per_booking = Counter(int(m.body["command_id"].rsplit(":", 1)[1]) for m in sends)
    assert {b: per_booking[b] for b in due} == dict.fromkeys(due, 1)
    assert per_booking[not_yet] == 0 and per_booking[cancelled] == 0
    reminded = await pool.fetchval(
        "SELECT count(*) FROM scheduler.booking WHERE id = any($1::bigint[]) "
        "AND reminded_at IS NOT NULL",
        due,
    )
    assert reminded == len(due)

    by_id = {int(m.body["command_id"].rsplit(":", 1)[1]): m for m in sends}
    english = SendMessage.model_validate(by_id[due[1]].body)
    assert english.to == people[1].wa_id
    assert english.message.body.startswith("Reminder: your COVID-19 vaccination (dose 1)")
    assert english.template is not None
    assert english.template.name == "appointment_reminder"
    assert english.template.lang == "en"
    assert english.template.params[:2] == ["1", place.name]
    assert english.template.params[3] == "09:00-13:00 WIB"
    indonesian = SendMessage.model_validate(by_id[due[0]].body)
    assert indonesian.message.body.startswith("Pengingat: besok")
    assert indonesian.template is not None and indonesian.template.lang == "id"
