"""JSON read as a stream of events with bounds on what it may build.

A push or a file line is parsed with ijson, never with one ``json.loads`` of
an unbounded text, so memory stays in proportion to what is accepted: nesting
deeper than ``max_depth``, more than ``max_values`` values, or an array at a
``limits`` prefix longer than its limit is refused as soon as it is seen.

A text already in memory whose bytes alone show it holds no more values than
allowed (each value but the first follows a comma or opens a container) is
parsed by ``json.loads`` instead, four times faster, and then checked against
the same bounds; anything that parser would read otherwise than ijson (NaN,
surrogate escapes, huge numbers) or that breaks a bound goes to ijson, so the
answer, and any refusal, is the same either way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import IO, Any

import ijson

READ_BYTES = 2048
# A "\ud800" to "\udfff" escape: a surrogate, which ijson reads otherwise.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
INTEGER_RANGE = range(-(2**63), 2**64)


class JsonRefused(ValueError):
    """The JSON is malformed, or goes past a bound; ``field`` says where.
    ``too_large`` tells a bound (413) from a malformed document (400)."""

    def __init__(self, field: str, message: str, too_large: bool = False) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.too_large = too_large


def _field(prefix: str, root: str) -> str:
    # ijson's prefixes say "transactions.item.model": show "transactions[].model",
    # and name an array of arrays by the field that holds it.
    path = re.sub(r"(\[\])+$", "", ("." + prefix).replace(".item", "[]"))
    return path.removeprefix(".") or root


class _Unusual(ValueError):
    """Something the fast parser would not read as ijson does."""


def _refuse_constant(name: str) -> Any:
    raise _Unusual(name)


def _fits(value: Any, depth: int, limits: Mapping[str, int], prefix: str) -> bool:
    """Whether the container ``value`` (at ``prefix``; ``depth`` more levels of
    containers allowed, itself included) keeps the depth and array bounds, with
    numbers ijson reads alike."""
    if depth == 0:
        return False
    if type(value) is dict:
        items: Any = value.items()
    else:
        limit = limits.get(prefix)
        if limit is not None and len(value) > limit:
            return False
        items = (("item", item) for item in value)
    for key, item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if item not in INTEGER_RANGE:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif not _fits(item, depth - 1, limits, f"{prefix}.{key}" if prefix else key):
            return False
    return True


def _quick_load(
    data: bytes, max_depth: int, max_values: int, limits: Mapping[str, int]
) -> tuple[bool, Any]:
    """(True, the document) when ``json.loads`` may read ``data`` within the
    bounds and reads it as ijson would; (False, None) otherwise."""
    most_values = data.count(b",") + 2 * (data.count(b"[") + data.count(b"{")) + 1
    if most_values > max_values or SURROGATE_ESCAPE.search(data):
        return False, None
    try:
        result = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return False, None
    if type(result) in (dict, list) and not _fits(result, max_depth, limits, ""):
        return False, None
    return True, result


def load_bounded(
    source: IO[bytes] | bytes,
    *,
    max_depth: int,
    max_values: int,
    limits: Mapping[str, int] | None = None,
    root: str = "body",
) -> Any:
    """Parse one JSON document from ``source`` within the bounds.

    ``limits`` maps an ijson prefix (``"transactions"``) to the most items the
    array there may hold. Raises JsonRefused naming the field at fault.
    """
    limits = limits or {}
    if isinstance(source, bytes):
        quick, result = _quick_load(source, max_depth, max_values, limits)
        if quick:
            return result
    stack: list[Any] = []
    keys: list[str | None] = []
    counts: list[int] = []
    result: Any = None
    values = 0
    try:
        # Small reads: ijson turns each read into all its events at once, each
        # with a prefix as long as its depth, so a deep document costs the square
        # of what one read holds before the depth bound below is reached.
        events = ijson.parse(source, use_float=True, buf_size=READ_BYTES)
        for prefix, event, value in events:
            if event == "map_key":
                keys[-1] = value
                continue
            if event in ("end_map", "end_array"):
                done = stack.pop()
                keys.pop()
                counts.pop()
                value = done
            else:
                values += 1
                if values > max_values:
                    raise JsonRefused(
                        _field(prefix, root),
                        f"holds more than {max_values} values",
                        too_large=True,
                    )
                if event in ("start_map", "start_array"):
                    if len(stack) >= max_depth:
                        raise JsonRefused(
                            _field(prefix, root), f"nests deeper than {max_depth}"
                        )
                    container: Any = {} if event == "start_map" else []
                    _add(stack, keys, counts, container, prefix, limits, root)
                    stack.append(container)
                    keys.append(None)
                    counts.append(0)
                    if len(stack) == 1:
                        result = container
                    continue
            if event in ("end_map", "end_array"):
                continue
            if not stack:
                result = value
                continue
            _add(stack, keys, counts, value, prefix, limits, root)
    except JsonRefused:
        raise
    except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "malformed"
        raise JsonRefused(root, f"not a valid JSON document ({detail})") from None
    return result


def _add(
    stack: list[Any],
    keys: list[str | None],
    counts: list[int],
    value: Any,
    prefix: str,
    limits: Mapping[str, int],
    root: str,
) -> None:
    if not stack:
        return
    parent = stack[-1]
    if isinstance(parent, dict):
        parent[keys[-1]] = value
        return
    counts[-1] += 1
    # The array's own prefix is the item's prefix less ".item".
    limit = limits.get(prefix.removesuffix(".item").removesuffix("item"))
    if limit is not None and counts[-1] > limit:
        raise JsonRefused(
            _field(prefix.removesuffix(".item"), root),
            f"holds more than {limit} items",
            too_large=True,
        )
    parent.append(value)
