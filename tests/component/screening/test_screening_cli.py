"""`vaksin screening load` and `vaksin screening list` (the functions the CLI calls) against the
real database, with the service running: a newly loaded rule set is in force from its date
without a restart, and a malformed one is refused with the reason and leaves nothing behind."""

from __future__ import annotations

import copy
import io
import json
import secrets
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from services.common.settings import Settings
from services.screening.cli import list_rule_sets, load_rule_set_file

from .conftest import Screening

pytestmark = pytest.mark.servers

DOCUMENT: dict[str, Any] = {
    "vaccine": "CoronaVac",
    "summary": {"id": "• sedang hamil", "en": "• pregnant"},
    "questions": [
        {
            "id": "pregnant",
            "text": {"id": "Apakah Anda sedang hamil?", "en": "Are you pregnant?"},
            "short": {"id": "Sedang hamil", "en": "Pregnant"},
        }
    ],
    "rules": [
        {
            "id": "pregnant",
            "when": {"answer": "pregnant", "is": True},
            "outcome": "not_eligible",
            "reason": {"id": "Anda sedang hamil.", "en": "You are pregnant."},
        }
    ],
}


def far_future() -> date:
    """A date no other test screens on, so a rule set loaded here changes nothing for them."""
    return date(2100 + secrets.randbelow(800), 1 + secrets.randbelow(12), 1 + secrets.randbelow(28))


def rule_set(effective_from: date, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    document["id"] = f"test-{secrets.token_hex(4)}"
    document["effective_from"] = effective_from.isoformat()
    document.update(changes)
    return document


async def run(coro: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await coro(out, err)
    return code, out.getvalue(), err.getvalue()


async def load(settings: Settings, path: Path, today: date | None = None) -> tuple[int, str, str]:
    return await run(
        lambda out, err: load_rule_set_file(settings, path, out=out, err=err, today=today)
    )


async def stored_ids(pool: asyncpg.Pool, *ids: str) -> list[str]:
    rows = await pool.fetch("SELECT id FROM screening.rule_set WHERE id = any($1::text[])", ids)
    return [r["id"] for r in rows]


async def test_a_loaded_rule_set_with_a_later_date_is_the_one_in_force_from_then(
    settings: Settings, screening: Screening, tmp_path: Path
) -> None:
    starts = date(2999, 1, 1)  # later than every other test's rule set
    document = rule_set(starts)
    path = tmp_path / "new-rules.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    code, out, err = await load(settings, path, today=starts)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"loaded {document['id']} (CoronaVac): 1 questions, 1 rules",
        f"{document['id']} is in force from {starts.isoformat()}",
        f"in force today ({starts.isoformat()}): {document['id']}, since {starts.isoformat()}",
    ]
    # the running service uses it from its date on, and the previous one until then
    assert (await screening.questionnaire("en", starts)).rule_set_id == document["id"]
    before = await screening.questionnaire("en", date(2021, 3, 1))
    assert before.rule_set_id == "coronavac-2021-02-15"

    listing = await run(lambda out, err: list_rule_sets(settings, out=out, err=err, today=starts))
    assert listing[0] == 0
    lines = listing[1].splitlines()
    marked = [line for line in lines[1:-1] if line.startswith("*")]
    assert len(marked) == 1 and document["id"] in marked[0]
    assert any(
        "coronavac-2021-01" in line and "from 2021-01-02 to 2021-02-14" in line for line in lines
    )
    assert lines[-1] == f"* = in force today ({starts.isoformat()})"


async def test_json_and_yaml_files_load_alike_and_a_reload_is_a_no_op(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    document = rule_set(far_future())
    as_json = tmp_path / "rules.json"
    as_json.write_text(json.dumps(document))
    as_yaml = tmp_path / "rules.yml"
    as_yaml.write_text(yaml.safe_dump(document))
    assert (await load(settings, as_json))[0] == 0
    code, out, _ = await load(settings, as_yaml)
    assert code == 0
    assert out.startswith(f"already loaded, unchanged: {document['id']}")
    assert await stored_ids(pool, document["id"]) == [document["id"]]


async def test_the_same_id_with_other_content_is_refused(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    document = rule_set(far_future())
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    assert (await load(settings, path))[0] == 0
    document["summary"]["en"] = "• pregnant (changed)"
    path.write_text(json.dumps(document))
    code, out, err = await load(settings, path)
    assert (code, out) == (1, "")
    assert f"a rule set '{document['id']}' is already loaded with other content" in err
    definition = await pool.fetchval(
        "SELECT definition FROM screening.rule_set WHERE id = $1", document["id"]
    )
    assert definition["summary"]["en"] == "• pregnant"


async def test_a_malformed_file_is_refused_with_the_reason_and_nothing_is_stored(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    document = rule_set(far_future())
    document["rules"][0]["outcome"] = "maybe"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    code, out, err = await load(settings, path)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}: rules[0].outcome: unknown outcome 'maybe' "
        "(outcomes: eligible, postpone, not_eligible, refer)",
        "rule set refused; nothing loaded",
    ]
    assert await stored_ids(pool, document["id"]) == []


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("rules.txt", "id: x", "unknown file type"),
        ("missing.yaml", None, "no such file"),
        ("broken.yaml", "id: [x", "not valid YAML"),
    ],
)
async def test_unreadable_files_are_refused(
    settings: Settings, tmp_path: Path, name: str, content: str | None, reason: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, out, err = await load(settings, path)
    assert (code, out) == (1, "")
    assert reason in err and err.endswith("nothing loaded\n")
