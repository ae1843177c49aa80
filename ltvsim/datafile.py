"""Data users give ltvsim: the one error class for it, and the CSV reader.

Event logs (``ltvsim.events``), customer bases and acquisition plans
(``ltvsim.forecast``) are small CSV files, often saved from a spreadsheet.
What every reader of them must get right lives here once: a spreadsheet's
byte-order mark, blank rows, header names with stray spaces, and a one-line
``DataError`` naming the file for one that is missing, unreadable or empty.
Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DataError", "naming_file", "read_csv_rows"]


class DataError(ValueError):
    """Data that cannot be used (a file, records or counts); the message names where and why."""


@contextmanager
def naming_file(path):
    """Prefix the message of a ``DataError`` raised inside with ``path`` (None: as it is).

    For errors found in a file's records after it was read, which name a row or
    a column but not the file.
    """
    try:
        yield
    except DataError as exc:
        if path is None:
            raise
        raise DataError(f"{path}: {exc}") from None


def read_csv_rows(path, what: str, header_hint: str) -> tuple[list[str], list[tuple[int, list]]]:
    """The stripped header of a CSV file and its other non-blank rows as ``(row, cells)``.

    ``what`` names the file for the user ("event log"); ``header_hint`` is the
    expected header, quoted when the file is empty. A row is the file's line
    where the record starts (a quoted cell may span lines).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a spreadsheet's BOM
            reader = csv.reader(handle)
            while True:
                row = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                if any(cell.strip() for cell in cells):
                    rows.append((row, cells))
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a CSV text file (not UTF-8)") from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not rows:
        raise DataError(f"{path} is empty; expected a header {header_hint}")
    (_, header), *body = rows
    return [name.strip() for name in header], body
