"""Helpers shared by every JSON blueprint: errors, request bodies, pagination."""

from __future__ import annotations

import codecs
import io
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from flask import Response, g, jsonify, request
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


def body_too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413, "Body too large", f"body: at most {max_bytes} bytes", field="body"
    )


class CappedStream:
    """The request body (or a multipart file) as a stream that answers 413 once
    more than ``max_bytes`` were read, and 400 when the body cannot be read (a
    malformed chunk size, a client gone)."""

    def __init__(self, max_bytes: int, part: str | None = None) -> None:
        if request.content_length is not None and request.content_length > max_bytes:
            raise body_too_large(max_bytes)
        self.max_bytes = max_bytes
        self.read_bytes = 0
        if part is None:
            self.stream = request.stream
        else:
            upload = _uploaded_part(part)
            self.stream = upload.stream

    def read(self, size: int = BLOCK_BYTES) -> bytes:
        """At most ``size`` bytes; chunked bodies carry no length, so one byte
        past the cap is read to tell."""
        if size is None or size < 0:
            size = BLOCK_BYTES
        size = min(size, self.max_bytes + 1 - self.read_bytes)
        try:
            block = self.stream.read(size) if size > 0 else b""
        except ApiError:
            raise
        except Exception:  # a server's own chunk decoder refused the body
            raise ApiError(
                400,
                "Invalid body",
                "body: the request body could not be read (malformed chunked"
                " transfer encoding or a connection cut short)",
                field="body",
            ) from None
        self.read_bytes += len(block)
        if self.read_bytes > self.max_bytes:
            raise body_too_large(self.max_bytes)
        return block


def _uploaded_part(part: str):
    try:
        upload = request.files.get(part)
    except ApiError:
        raise
    except Exception:  # a multipart body the parser cannot read
        raise invalid(part, "the multipart body could not be read") from None
    if upload is None:
        raise invalid(part, f"send the file as the multipart field {part!r}")
    return upload


def _copy_body(target: IO[bytes], max_bytes: int, part: str | None) -> None:
    """Copy the request body, or its multipart file ``part``, into ``target``.

    Raises a 413 ApiError naming ``body`` past ``max_bytes``, before reading
    anything when the request declares its length.
    """
    stream = CappedStream(max_bytes, part)
    while block := stream.read(BLOCK_BYTES):
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


def _check_text_file(
    path: str, max_line_bytes: int, field: str, strict: bool = True
) -> None:
    """Refuse a spooled upload with an over-long line or, if ``strict``, one
    that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    number = 0
    with open(path, "rb") as spool:
        # A line, its line end, and one byte more to tell an over-long line.
        while line := spool.readline(max_line_bytes + 3):
            number += 1
            if len(line.rstrip(b"\r\n")) > max_line_bytes:
                raise invalid(
                    field, f"line {number} is longer than {max_line_bytes} bytes"
                )
            if not strict:
                continue
            try:
                decoder.decode(line, final=False)
            except UnicodeDecodeError:
                raise invalid(field, f"line {number} is not UTF-8 text") from None
    if not strict:
        return
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise invalid(field, "must be UTF-8 text") from None


@contextmanager
def text_lines_body(
    max_bytes: int,
    max_line_bytes: int,
    part: str | None = None,
    bad_bytes_replaced: bool = False,
) -> Iterator[Iterator[str]]:
    """Spool an uploaded UTF-8 text (the body or its multipart file ``part``)
    and yield its lines, read one at a time; 413 past ``max_bytes``, 400 for a
    line over ``max_line_bytes``, and for a text that is not UTF-8 unless
    ``bad_bytes_replaced`` (then such bytes read as U+FFFD, for the reader to
    refuse their lines)."""
    field = part or "body"
    with spooled_body(max_bytes, suffix=".txt", part=part) as path:
        _check_text_file(path, max_line_bytes, field, strict=not bad_bytes_replaced)
        errors = "replace" if bad_bytes_replaced else "strict"
        with open(path, encoding="utf-8-sig", errors=errors, newline=None) as text:
            yield (line.rstrip("\n") for line in text)


def json_object_body(max_bytes: int, empty_is_object: bool = False) -> dict[str, Any]:
    """Return the request's JSON object or raise a 4xx ApiError naming ``body``;
    with ``empty_is_object``, no body at all is an empty object."""
    raw = capped_body(max_bytes)
    if empty_is_object and not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(
            400, "Invalid JSON", "body: not a valid JSON document", field="body"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid JSON", "body: must be a JSON object", field="body")
    g.json_body = data  # what the audit trail's request net keeps of a write
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


PAGE_ARGS = ("page", "per_page")


def refuse_unbounded_page_args() -> None:
    """Refuse a ``page`` or ``per_page`` query argument past 10^9 on every
    request: the dashboard's pagination would send it to the database as an
    offset no column type holds."""
    if not request.query_string:
        return
    for name in PAGE_ARGS:
        raw = request.args.get(name)
        if raw and raw.isascii() and raw.isdigit() and len(raw) > 9:
            raise invalid(name, "must be a positive integer below 10^9")


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
