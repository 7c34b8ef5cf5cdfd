"""What a crawled JSON document may hold before it reaches the database.

Both databases store crawled values as JSON and chart them as numbers: an
integer beyond 64 bits, a non-finite number, a NUL character or a lone
surrogate would fail the write, and a very deep or very wide document costs
every page that shows it. Such a document is its instance's error.
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_KEY_LENGTH = 200


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not Unicode text)"
    return None


def _short(path: str) -> str:
    return path if len(path) <= 80 else path[:77] + "..."


def document_problem(data: Any, max_depth: int, max_keys: int) -> str | None:
    """Why ``data`` may not be stored, naming where; None if it may."""
    keys = 0
    # Iterative walk: a hostile document must not exhaust the stack either.
    pending: list[tuple[Any, str, int]] = [(data, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        where = _short(path or "the document")
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                return f"{where}: integer outside the signed 64-bit range"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"{where}: number too large to store"
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem:
                return f"{where}: text {problem}"
        elif isinstance(value, dict | list):
            if depth > max_depth:
                return f"{where}: nested deeper than {max_depth} levels"
            if isinstance(value, list):
                pending.extend(
                    (item, f"{path}[{n}]", depth + 1) for n, item in enumerate(value)
                )
                continue
            keys += len(value)
            if keys > max_keys:
                return f"more than {max_keys} keys in all"
            for key, item in value.items():
                if len(key) > MAX_KEY_LENGTH:
                    return f"{where}: a key longer than {MAX_KEY_LENGTH} characters"
                problem = _text_problem(key)
                if problem:
                    return f"{where}: a key {problem}"
                pending.append((item, f"{path}.{key}" if path else key, depth + 1))
    return None
