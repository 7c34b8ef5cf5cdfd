"""Work on many instances at once from the list: bulk actions and the CSV
export of a filtered list. Plain functions; the views commit."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tracker.instances import admin
from tracker.instances.changes import admin_update_instance
from tracker.instances.models import Instance
from tracker.spreadsheet import spreadsheet_text
from tracker.templating import crawled_text

# How many rows one bulk action takes (the page shows far fewer).
MAX_SELECTED = 1000


def _enable(session: Session, instance: Instance) -> None:
    admin_update_instance(instance, {"enabled": True})


def _disable(session: Session, instance: Instance) -> None:
    admin_update_instance(instance, {"enabled": False})


def _approve(session: Session, instance: Instance) -> None:
    admin.approve(instance)


def _delete(session: Session, instance: Instance) -> None:
    session.delete(instance)


ACTIONS: dict[str, Callable[[Session, Instance], None]] = {
    "enable": _enable,
    "disable": _disable,
    "approve": _approve,
    "delete": _delete,
}


def apply_bulk(session: Session, action: str, numbers: Sequence[int]) -> int:
    """Apply ``action`` (one of ACTIONS) to the instances with these numbers;
    return how many there were (unknown numbers are passed over)."""
    apply = ACTIONS[action]
    instances = session.scalars(
        select(Instance).where(Instance.id.in_(list(numbers)[:MAX_SELECTED]))
    ).all()
    for instance in instances:
        apply(session, instance)
    return len(instances)


MAIN_COLUMNS = (
    "id",
    "url",
    "organisation",
    "contact",
    "email",
    "enabled",
    "approved",
    "health",
    "country_code",
    "country_name",
    "city",
    "registered",
    "last_attempt",
    "last_success",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    return spreadsheet_text(text)


def csv_rows(
    session: Session,
    statement: Select,
    crawled_fields: Sequence[str],
    credentials: bool = False,
) -> Iterator[str]:
    """The listed instances as CSV lines, header first, a row at a time; with
    ``credentials``, each instance's uuid after its number."""
    main = ("id", "uuid", *MAIN_COLUMNS[1:]) if credentials else MAIN_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: list[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(cell) for cell in cells])
        return buffer.getvalue()

    yield line([*main, *crawled_fields])
    for instance in session.scalars(statement.execution_options(yield_per=500)):
        crawled = instance.crawled or {}
        yield line(
            [getattr(instance, name) for name in main]
            + [crawled_text(crawled.get(name)) for name in crawled_fields]
        )
