"""CSV that a spreadsheet opens as data: a cell that starts like a formula
(``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading ``'``,
so it is shown as text and never run. A plain number (``-5``, ``+1.5e3``) is
not a formula and is left as it is."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_text(text: str) -> str:
    """``text`` as a cell a spreadsheet shows and never runs."""
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Each row as one CSV line, every text cell made safe for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [spreadsheet_text(cell) if isinstance(cell, str) else cell for cell in row]
        )
        yield buffer.getvalue()
