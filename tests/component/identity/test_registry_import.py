"""`vaksin registry import`: all-or-nothing, line-numbered errors, idempotent re-import, no raw
NIK or phone in the database."""

import io
from pathlib import Path

import asyncpg

from services.common.contracts.identity import VerifyOutcome
from services.common.settings import Settings
from services.identity import domain
from services.identity.registry_import import import_registry_file

from .support import VerifyFn, random_phone, registry_line, unique_niks

HEADER = ",".join(domain.REGISTRY_HEADER)


async def run_import(settings: Settings, path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await import_registry_file(settings, path, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_csv(tmp_path: Path, lines: list[str], name: str = "registry.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


async def count_by_nik(pool: asyncpg.Pool, settings: Settings, niks: list[str]) -> int:
    hashes = [domain.nik_hash(settings.nik_pepper, n) for n in niks]
    return await pool.fetchval(
        "SELECT count(*) FROM identity.person WHERE nik_hash = ANY($1::text[])", hashes
    )


async def test_bad_rows_are_listed_by_line_and_nothing_is_imported(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    good = unique_niks(3)
    path = write_csv(
        tmp_path,
        [
            registry_line(good[0], random_phone()),
            registry_line(good[1][:8] + "13" + good[1][10:], random_phone()),  # month 13
            registry_line(good[2], "6221555123"),  # landline
            "",
            registry_line(good[1], random_phone(), name=""),
            registry_line(good[0], random_phone()),  # duplicate of line 2
        ],
    )
    code, out, err = await run_import(settings, path)
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[:5] == [
        "line 3: nik: digits 9-10 are the birth month; 13 is not 01-12",
        "line 4: phone: an Indonesian mobile number starts with 08 (or +628)",
        "line 6: name: empty",
        "line 7: nik: duplicate of line 2",
        f"{path}: 4 bad row(s); nothing imported",
    ]
    assert await count_by_nik(pool, settings, good) == 0
    assert not any(n in err for n in good)


async def test_reimport_updates_by_nik_and_never_duplicates(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path, verify: VerifyFn
) -> None:
    niks = unique_niks(3)
    phones = [random_phone() for _ in niks]
    first = write_csv(
        tmp_path, [registry_line(n, p) for n, p in zip(niks[:2], phones, strict=False)]
    )
    code, out, _ = await run_import(settings, first)
    assert (code, out) == (0, "imported 2 rows: 2 new, 0 updated\n")

    moved_phone = random_phone()
    second = write_csv(
        tmp_path,
        [
            registry_line(niks[0], phones[0], name="Siti Rahmawati Putri"),
            registry_line(niks[1], moved_phone, facility_code="RS-9"),
            registry_line(niks[2], phones[2]),
        ],
        name="second.csv",
    )
    code, out, _ = await run_import(settings, second)
    assert (code, out) == (0, "imported 3 rows: 1 new, 2 updated\n")
    code, out, _ = await run_import(settings, second)
    assert (code, out) == (0, "imported 3 rows: 0 new, 3 updated\n")

    assert await count_by_nik(pool, settings, niks) == 3
    renamed = await verify(phones[0], niks[0][-6:])
    assert renamed.masked_name == "S*** R******** P****"
    # the entry moved to its new number: the old one no longer holds it
    assert (await verify(phones[1], niks[1][-6:])).outcome is VerifyOutcome.NOT_LISTED
    moved = await verify(moved_phone, niks[1][-6:])
    assert (moved.outcome, moved.facility_code) == (VerifyOutcome.VERIFIED, "RS-9")


async def test_person_rows_hold_no_raw_nik_suffix_or_phone(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    niks = unique_niks(4)
    phones = [random_phone() for _ in niks]
    path = write_csv(tmp_path, [registry_line(n, p) for n, p in zip(niks, phones, strict=True)])
    assert (await run_import(settings, path))[0] == 0
    hashes = [domain.nik_hash(settings.nik_pepper, n) for n in niks]
    rows = await pool.fetch(
        """SELECT nik_hash, masked_nik, name, masked_name, phone_hash, masked_phone, suffix_hash,
                  profession, facility_code, source
           FROM identity.person WHERE nik_hash = ANY($1::text[])""",
        hashes,
    )
    assert len(rows) == 4
    dump = "\n".join("|".join(str(v) for v in r.values()) for r in rows)
    for nik, phone in zip(niks, phones, strict=True):
        assert nik not in dump
        assert nik[-6:] not in dump
        assert phone not in dump
        assert "0" + phone[2:] not in dump
        assert phone[2:] not in dump
    assert {r["masked_nik"] for r in rows} == {n[:6] + "*" * 10 for n in niks}
    assert {r["source"] for r in rows} == {"registry"}


async def test_imported_entry_verifies_the_sender_over_rpc(
    settings: Settings, tmp_path: Path, verify: VerifyFn
) -> None:
    [nik] = unique_niks(1)
    phone = random_phone()
    path = write_csv(tmp_path, [registry_line(nik, phone, name="Budi Santoso")])
    assert (await run_import(settings, path))[0] == 0
    result = await verify(phone, nik[-6:])
    assert (result.outcome, result.masked_name) == (VerifyOutcome.VERIFIED, "B*** S******")


async def test_missing_unreadable_and_non_utf8_files_are_refused_clearly(
    settings: Settings, tmp_path: Path
) -> None:
    code, _, err = await run_import(settings, tmp_path / "nope.csv")
    assert code == 1
    assert "nope.csv: no such file" in err

    code, _, err = await run_import(settings, tmp_path)
    assert code == 1
    assert "is a directory" in err

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(f"{HEADER}\n".encode() + "1,Sité,x,y,z\n".encode("latin-1"))
    code, _, err = await run_import(settings, latin1)
    assert code == 1
    assert "line 2: not UTF-8" in err


async def test_big_file_shows_progress_and_imports_in_one_batch(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    niks = unique_niks(20_000)
    path = write_csv(tmp_path, [registry_line(n, random_phone()) for n in niks])
    code, out, err = await run_import(settings, path)
    assert code == 0
    assert out == "imported 20000 rows: 20000 new, 0 updated\n"
    assert "checked 10000 rows" in err
    assert "checked 20000 rows" in err
    assert await count_by_nik(pool, settings, niks) == 20_000


async def test_header_only_file_imports_nothing_successfully(
    settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, [])
    assert await run_import(settings, path) == (0, "imported 0 rows: 0 new, 0 updated\n", "")
