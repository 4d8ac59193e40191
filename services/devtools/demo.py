"""`vaksin demo-data`: a small sample registry, the facilities of its health workers (and a few
more in the same regencies), and vaccination sessions for the next 14 days from today, for trying
the system (see README). Loading it again changes nothing; a later day adds the new days."""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import timedelta
from importlib import resources
from pathlib import Path

from services.common.clock import jakarta_today
from services.common.settings import Settings
from services.identity.registry_import import import_registry_file
from services.scheduler.cli import import_facilities_file, import_sessions_file

_HERE = resources.files(__package__)
DEMO_REGISTRY = Path(str(_HERE.joinpath("demo_registry.csv")))
DEMO_FACILITIES = Path(str(_HERE.joinpath("demo_facilities.csv")))
# Each facility's weekly timetable: `weekdays` is a range such as Mon-Sat.
DEMO_TIMETABLE = Path(str(_HERE.joinpath("demo_sessions.csv")))
DAYS = 14
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _weekdays(spec: str) -> range:
    first, _, last = spec.partition("-")
    return range(_WEEKDAYS.index(first), _WEEKDAYS.index(last or first) + 1)


def demo_sessions_csv(days: int = DAYS) -> str:
    """The timetable laid out over `days` days from today (Jakarta), as a sessions CSV."""
    today = jakarta_today()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["facility_code", "date", "start", "end", "capacity", "vaccine"])
    timetable = list(csv.DictReader(io.StringIO(DEMO_TIMETABLE.read_text("utf-8"))))
    for offset in range(days):
        day = today + timedelta(days=offset)
        for row in timetable:
            if day.weekday() in _weekdays(row["weekdays"]):
                writer.writerow(
                    [
                        row["facility_code"],
                        day.isoformat(),
                        row["start"],
                        row["end"],
                        row["capacity"],
                        row["vaccine"],
                    ]
                )
    return out.getvalue()


async def load_demo_data(settings: Settings) -> int:
    print(f"loading the sample registry from {DEMO_REGISTRY.name}")
    status = await import_registry_file(settings, DEMO_REGISTRY)
    if status != 0:
        return status
    print(f"loading the facilities from {DEMO_FACILITIES.name}")
    status = await import_facilities_file(settings, DEMO_FACILITIES)
    if status != 0:
        return status
    print(f"loading sessions for the next {DAYS} days ({DEMO_TIMETABLE.name})")
    with tempfile.TemporaryDirectory() as tmp:
        sessions = Path(tmp) / "demo_sessions.csv"
        sessions.write_text(demo_sessions_csv(), encoding="utf-8")
        status = await import_sessions_file(settings, sessions)
    if status == 0:
        print("try it: `vaksin chat` writes as 6281200000001 (Siti); her NIK ends in 850001")
    return status
