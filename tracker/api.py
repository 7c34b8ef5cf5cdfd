"""Helpers shared by every JSON blueprint: errors, request bodies, pagination."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from flask import Response, jsonify, request
from sqlalchemy import Select
from werkzeug.exceptions import HTTPException

from tracker.extensions import db


class ApiError(HTTPException):
    """A 4xx answer: an error title, a message and the field at fault, if any."""

    def __init__(
        self,
        code: int,
        error: str,
        message: str,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(description=message)
        self.code = code
        self.error = error
        self.field = field
        self.extra = extra


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "Invalid value", f"{field}: {message}", field=field)


def refuse_unknown_keys(body: dict, known: Sequence[str], label: str) -> None:
    """Refuse ``body`` with a 400 naming its keys that are not in ``known``."""
    unexpected = sorted(str(key) for key in body if key not in known)
    if not unexpected:
        return
    what = "not a field" if len(unexpected) == 1 else "not fields"
    raise ApiError(
        400,
        "Unexpected data",
        f"{', '.join(unexpected)}: {what} of {label}; expected {', '.join(known)}",
        field=unexpected[0],
        fields=unexpected,
    )


BLOCK_BYTES = 1 << 20


def _copy_body(target: IO[bytes], max_bytes: int, part: str | None) -> None:
    """Copy the request body, or its multipart file ``part``, into ``target``.

    Raises a 413 ApiError naming ``body`` past ``max_bytes``, before reading
    anything when the request declares its length.
    """
    too_large = ApiError(
        413, "Body too large", f"body: at most {max_bytes} bytes", field="body"
    )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    if part is None:
        stream = request.stream
    else:
        upload = request.files.get(part)
        if upload is None:
            raise invalid(part, f"send the file as the multipart field {part!r}")
        stream = upload.stream
    copied = 0
    # Chunked bodies carry no length: read one byte past the limit to tell.
    while block := stream.read(min(BLOCK_BYTES, max_bytes + 1 - copied)):
        copied += len(block)
        if copied > max_bytes:
            raise too_large
        target.write(block)


def capped_body(max_bytes: int, part: str | None = None) -> bytes:
    """Return the request body (or its multipart file ``part``), 413 past the cap."""
    buffer = io.BytesIO()
    _copy_body(buffer, max_bytes, part)
    return buffer.getvalue()


@contextmanager
def spooled_body(
    max_bytes: int, suffix: str = "", part: str | None = None
) -> Iterator[str]:
    """Spool the request body to a temporary file and yield its path; 413 past
    the cap. The file is removed when the block ends."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as spool:
        _copy_body(spool, max_bytes, part)
        spool.flush()
        yield spool.name


def json_object_body(max_bytes: int) -> dict[str, Any]:
    """Return the request's JSON object or raise a 4xx ApiError naming ``body``."""
    raw = capped_body(max_bytes)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(
            400, "Invalid JSON", "body: not a valid JSON document", field="body"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid JSON", "body: must be a JSON object", field="body")
    return data


def created(payload: dict[str, Any], location: str, status: int = 201) -> Response:
    """Answer ``payload`` with ``status`` and a ``Location`` header: 201 for a
    record created, 202 for a job queued whose status lives at ``location``."""
    response = jsonify(payload)
    response.status_code = status
    response.headers["Location"] = location
    return response


def positive_int_arg(name: str, default: int, maximum: int | None = None) -> int:
    """Read a positive integer query argument, rejecting junk with a 400."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or len(raw) > 9:
        raise invalid(name, "must be a positive integer below 10^9")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise invalid(name, f"must be at most {maximum}")
    return value


def boolean_arg(name: str) -> bool | None:
    """Read an optional true/false query argument."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise invalid(name, "must be true or false")


def page_within(statement: Select, per_page: int):
    """The page of ``statement`` that the ``page`` argument asks for, for a
    dashboard page: past the last page, the last page (never "page 99 of 3")."""
    pagination = db.paginate(
        statement, per_page=per_page, max_per_page=per_page, error_out=False
    )
    if pagination.pages and pagination.page > pagination.pages:
        pagination = db.paginate(
            statement,
            page=pagination.pages,
            per_page=per_page,
            max_per_page=per_page,
            error_out=False,
        )
    return pagination


def paginated(
    statement: Select, serialize: Callable[[Any], dict], page_size: int, max_size: int
) -> dict[str, Any]:
    """Run ``statement`` a page at a time: ``{items, page, per_page, total, pages}``."""
    page = positive_int_arg("page", 1)
    per_page = positive_int_arg("per_page", page_size, max_size)
    pagination = db.paginate(statement, page=page, per_page=per_page, error_out=False)
    return {
        "items": [serialize(item) for item in pagination.items],
        "page": page,
        "per_page": per_page,
        "total": pagination.total,
        "pages": pagination.pages,
    }
