"""Operators' CSV files (registry, facilities, sessions): reading them, and walking their rows
with 1-based line numbers, so every import reports problems the same way."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar


def read_csv_text(path: Path) -> str:
    """The file as text, or ValueError with a message an operator can act on."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not a CSV file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"{path}: line {line}: not UTF-8 text (save the file as 'CSV UTF-8')"
        ) from None


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


Row = TypeVar("Row")
ParseRow = Callable[[int, Sequence[str], dict[object, int]], tuple[Row | None, list[str]]]


def parse_csv(
    text: str,
    header: tuple[str, ...],
    parse_row: ParseRow[Row],
    progress: Callable[[int], None] | None,
    progress_every: int,
) -> tuple[list[Row], list[RowError]]:
    """Every row of a file, or every problem with its 1-based line number. Blank lines are
    skipped; a duplicate is an error on its second line (one of the two is wrong)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    rows: list[Row] = []
    errors: list[RowError] = []
    header_seen = False
    first_line_of: dict[object, int] = {}
    count = 0
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append(RowError(line, f"malformed CSV: {e}"))
            break
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if not header_seen:
            header_seen = True
            if tuple(c.strip().lower() for c in cells) != header:
                errors.append(RowError(start, f"header must be exactly {','.join(header)}"))
                break
            continue
        if len(cells) != len(header):
            errors.append(RowError(start, f"expected {len(header)} fields, found {len(cells)}"))
            continue
        row, problems = parse_row(start, cells, first_line_of)
        errors.extend(RowError(start, p) for p in problems)
        if row is not None:
            rows.append(row)
        count += 1
        if progress is not None and count % progress_every == 0:
            progress(count)
    if not header_seen:
        errors.append(RowError(1, f"empty file: expected header {','.join(header)}"))
    return rows, errors
