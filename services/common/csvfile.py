"""Reading an operator's CSV file: one place for the errors people actually hit."""

from __future__ import annotations

from pathlib import Path


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
