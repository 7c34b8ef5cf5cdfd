"""JSON read as a stream of events with bounds on what it may build.

A push or a file line is parsed with ijson, never with one ``json.loads`` of
the whole text, so memory stays in proportion to what is accepted: nesting
deeper than ``max_depth``, more than ``max_values`` values, or an array at a
``limits`` prefix longer than its limit is refused as soon as it is seen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, Any

import ijson

READ_BYTES = 2048


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
