"""The records the admin API edits: their fields, validation and JSON shape.

Each :class:`Collection` lists its fields once; request bodies are checked
against it (type, length, form, references that exist), the OpenAPI schema is
derived from it, and serialisation reads the model's columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import distinct, func, inspect, or_, select
from sqlalchemy.orm import Session

from allocation.models import (
    ALLOCATION_MODES,
    DESCRIPTION_LENGTH,
    FUNCTION_SUM,
    NAME_LENGTH,
    POOL_FUNCTIONS,
    AccountMap,
    Allocation,
    AllocationPeriod,
    AllocationPool,
    Grant,
    Machine,
    Project,
    Resource,
    ResourcePool,
    Scheme,
    Usage,
)
from allocation.resolution import MAX_DEPTH
from allocation.units import (
    CPU_HOURS,
    UNITS,
    UnitError,
    canonical_unit,
    humanise,
    parse_quantity,
    quantity_in,
)
from tracker.api import refuse_unknown_keys
from tracker.fields import FieldError

# Quantities beyond this are typing mistakes, and would overflow some clients.
MAX_QUANTITY = 1e15


@dataclass(frozen=True)
class Field:
    """One editable field: its JSON type and the rules its value must meet."""

    name: str
    kind: str  # string | number | date | choice | reference
    required: bool = True
    nullable: bool = False
    max_length: int = NAME_LENGTH
    choices: tuple[str, ...] = ()
    model: type | None = None
    positive: bool = False
    default: Any = None
    lower: bool = False  # stored lower-case (Slurm accounts)
    virtual: bool = False  # read from requests, never a column (``last_day``)
    help: str = ""

    def json_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of this field for the OpenAPI document."""
        schema: dict[str, Any]
        if self.kind == "string":
            schema = {"type": "string", "maxLength": self.max_length}
        elif self.kind == "number":
            schema = {"type": "number"}
            if self.positive:
                schema["exclusiveMinimum"] = 0
        elif self.kind == "quantity":
            schema = {
                "anyOf": [
                    {"type": "number"},
                    {"type": "string", "maxLength": 40, "examples": ["100 KB"]},
                ]
            }
        elif self.kind == "unit":
            schema = {"type": "string", "examples": list(UNITS)}
        elif self.kind == "date":
            schema = {"type": "string", "format": "date"}
        elif self.kind == "choice":
            schema = {"enum": list(self.choices)}
        else:
            schema = {
                "type": "integer",
                "description": f"id of a {self.model.__name__}",
            }
        if self.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema


@dataclass(frozen=True)
class Collection:
    """A kind of record under /api/allocation/<name>."""

    name: str
    model: type
    fields: tuple[Field, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    # Single columns unique whatever their case (names that are Slurm accounts).
    unique_folded: tuple[str, ...] = ()
    check: Callable[[Session, dict[str, Any], Any], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.model.__name__


def serialize(record: Any) -> dict[str, Any]:
    """Return a record's columns as JSON-ready values."""
    values = {}
    for attribute in inspect(record).mapper.column_attrs:
        value = getattr(record, attribute.key)
        values[attribute.key] = (
            value.isoformat() if isinstance(value, dt.date | dt.datetime) else value
        )
    if isinstance(record, AllocationPeriod) and record.end is not None:
        values["last_day"] = (record.end - dt.timedelta(days=1)).isoformat()
    return values


MAX_ID = 2**31 - 1


def _value(session: Session, spec: Field, value: Any) -> Any:
    name = spec.name
    if value is None:
        if spec.nullable:
            return None
        raise FieldError(name, "must not be null")
    if spec.kind == "string":
        if not isinstance(value, str):
            raise FieldError(name, "must be a string")
        value = value.strip()
        if spec.required and not value and spec.default is None:
            raise FieldError(name, "must not be empty")
        if len(value) > spec.max_length:
            raise FieldError(name, f"must be at most {spec.max_length} characters")
        if any(ord(c) < 32 for c in value):
            raise FieldError(name, "must not contain control characters")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise FieldError(name, "must be valid Unicode text (a lone surrogate)")
        return value.lower() if spec.lower else value
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(name, "must be a number")
        if not -MAX_QUANTITY <= value <= MAX_QUANTITY or value != value:
            raise FieldError(
                name, f"must be a number between -{MAX_QUANTITY:g} and {MAX_QUANTITY:g}"
            )
        if spec.positive and value <= 0:
            raise FieldError(name, "must be greater than 0")
        return float(value)
    if spec.kind == "quantity":
        # A number in the pool's unit, or text with a unit ("100 KB"); the
        # collection's check converts it once it knows the pool.
        if isinstance(value, str) and len(value) <= 40:
            try:
                quantity = parse_quantity(value)
            except UnitError as exc:
                raise FieldError(name, str(exc)) from None
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldError(name, 'must be a number or a quantity such as "100 KB"')
        else:
            quantity = (float(value), None)
        if quantity[0] < 0:
            typed = value.strip() if isinstance(value, str) else f"{value:g}"
            raise FieldError(
                name,
                f"cannot be negative ({typed}): an amount of disk space or CPU"
                ' time is 0 or more, such as "100 GB" or "700"',
            )
        return quantity
    if spec.kind == "unit":
        unit = canonical_unit(value) if isinstance(value, str) else None
        if unit is None:
            raise FieldError(name, "must be one of " + ", ".join(UNITS))
        return unit
    if spec.kind == "date":
        if not isinstance(value, str):
            raise FieldError(name, "must be a date as YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise FieldError(name, "must be a date as YYYY-MM-DD") from None
    if spec.kind == "choice":
        if value not in spec.choices:
            raise FieldError(name, "must be one of " + ", ".join(spec.choices))
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, "must be an integer id")
    # Ids are 32-bit: a larger one names no record (and overflows the query).
    if not 0 < value <= MAX_ID or session.get(spec.model, value) is None:
        raise FieldError(name, f"no {spec.model.__name__} with id {value}")
    return value


def parse_body(
    session: Session, collection: Collection, body: dict[str, Any], existing: Any = None
) -> dict[str, Any]:
    """Check a create (``existing`` None) or update body; return the new values.

    Raises FieldError naming the first field at fault, or a 400 ApiError for a
    key that is not a field.
    """
    known = {spec.name: spec for spec in collection.fields}
    refuse_unknown_keys(body, tuple(known), collection.label)
    values: dict[str, Any] = {}
    for spec in collection.fields:
        if spec.name in body:
            values[spec.name] = _value(session, spec, body[spec.name])
        elif existing is None:
            if spec.required:
                raise FieldError(spec.name, "is required")
            values[spec.name] = spec.default
    if collection.check is not None:
        merged = {
            spec.name: values.get(spec.name, getattr(existing, spec.name, None))
            for spec in collection.fields
        }
        before = dict(merged)
        collection.check(session, merged, existing)
        # The check may derive fields (a period's end from its last day).
        values.update(
            {k: v for k, v in merged.items() if k not in before or v != before[k]}
        )
    for spec in collection.fields:
        if spec.virtual:
            values.pop(spec.name, None)
    for name, value in values.items():
        if isinstance(value, tuple):
            # A quantity no check converted: only a bare number is meaningful.
            number, unit = value
            if unit is not None:
                raise FieldError(name, "takes a plain number here")
            values[name] = number
    return values


def duplicate_field(
    session: Session, collection: Collection, values: dict[str, Any], existing: Any
) -> str | None:
    """Return the first field whose value (or combination) another record has."""
    model = collection.model
    for column in collection.unique_folded:
        value = values.get(column, getattr(existing, column, None))
        if value is None:
            continue
        statement = select(model.id).where(
            func.lower(getattr(model, column)) == value.lower()
        )
        if existing is not None:
            statement = statement.where(model.id != existing.id)
        if session.scalar(statement.limit(1)) is not None:
            return column
    for columns in collection.unique:
        merged = {c: values.get(c, getattr(existing, c, None)) for c in columns}
        statement = select(model.id).where(
            *(getattr(model, c) == merged[c] for c in columns)
        )
        if existing is not None:
            statement = statement.where(model.id != existing.id)
        if session.scalar(statement.limit(1)) is not None:
            return columns[-1] if len(columns) > 1 else columns[0]
    return None


# --- checks across fields ---


def _in_order(first: str, second: str, strict: bool = False):
    def check(_session: Session, values: dict[str, Any], _existing: Any) -> None:
        start, end = values.get(first), values.get(second)
        if start is None or end is None:
            return
        if end < start or (strict and end == start):
            relation = "after" if strict else "on or after"
            raise FieldError(
                second, f"must be {relation} {first} ({start.isoformat()})"
            )

    return check


def _check_project(session: Session, values: dict[str, Any], existing: Any) -> None:
    _in_order("start_date", "end_date")(session, values, existing)
    parent_id = values.get("parent_id")
    if existing is None or parent_id is None:
        return
    # Refuse a parent that is the project itself or one of its descendants.
    current: int | None = parent_id
    for _ in range(MAX_DEPTH):
        if current is None:
            return
        if current == existing.id:
            raise FieldError("parent_id", "would make the project its own ancestor")
        current = session.scalar(select(Project.parent_id).where(Project.id == current))
    raise FieldError("parent_id", "the tree above this parent is too deep")


def _in_range(name: str, value: float, unit: str) -> float:
    if not -MAX_QUANTITY <= value <= MAX_QUANTITY:
        raise FieldError(name, f"must be at most {MAX_QUANTITY:g} {unit}")
    return value


def _quantity(name: str, value: Any, unit: str) -> Any:
    """Convert a typed quantity into ``unit`` (values already stored pass)."""
    if not isinstance(value, tuple):
        return value
    try:
        return _in_range(name, quantity_in(value, unit), unit)
    except UnitError as exc:
        raise FieldError(name, f"{exc} (the resource pool counts {unit})") from None


def _check_allocation(session: Session, values: dict[str, Any], _existing: Any) -> None:
    grant = session.get(Grant, values["grant_id"])
    pool = session.get(AllocationPool, values["allocation_pool_id"])
    values["quantity"] = _quantity(
        "quantity", values["quantity"], pool.resource_pool.units
    )
    if values["quantity"] is not None and values["quantity"] < 0:
        raise FieldError("quantity", "must not be negative")
    if grant.project_id != pool.project_id:
        grant_project = session.get(Project, grant.project_id).name
        pool_project = session.get(Project, pool.project_id).name
        raise FieldError(
            "grant_id",
            f"grant {grant.id} belongs to project {grant_project!r}, but allocation "
            f"pool {pool.id} to project {pool_project!r}: a grant can only fund its "
            "own project's pools",
        )
    values["project_id"] = pool.project_id


def _check_resource(session: Session, values: dict[str, Any], _existing: Any) -> None:
    quantity = values.get("quantity")
    if not isinstance(quantity, tuple):
        return
    unit = session.get(ResourcePool, values["resource_pool_id"]).units
    if quantity[1] is not None and unit == CPU_HOURS:
        raise FieldError(
            "quantity", "a CPU resource's quantity is its number of CPUs: no unit"
        )
    values["quantity"] = _quantity("quantity", quantity, unit)


def _check_resource_pool(
    session: Session, values: dict[str, Any], existing: Any
) -> None:
    if existing is None or values["units"] == existing.units:
        return
    used = session.scalar(
        select(AllocationPool.id)
        .where(AllocationPool.resource_pool_id == existing.id)
        .limit(1)
    )
    if used is not None:
        # Stored allocations and usage are in the old unit.
        raise FieldError(
            "units", "cannot change while allocation pools use this resource pool"
        )


def _check_period(session: Session, values: dict[str, Any], existing: Any) -> None:
    last_day = values.pop("last_day", None)
    if last_day is not None:
        end = last_day + dt.timedelta(days=1)
        given_end = values.get("end")
        if existing is None and given_end is not None and given_end != end:
            raise FieldError(
                "last_day", "disagrees with end (the day after the last day)"
            )
        values["end"] = end
    if values.get("end") is None:
        raise FieldError("last_day", "is required (or end, the day after it)")
    if last_day is not None and values.get("start") and last_day < values["start"]:
        raise FieldError(
            "last_day", f"must be on or after start ({values['start'].isoformat()})"
        )
    _in_order("start", "end", strict=True)(session, values, existing)
    if existing is not None:
        start = values.get("start") or existing.start
        problem = _usage_left_out(session, existing, start, values["end"])
        if problem:
            moved_start = start > existing.start
            field_name = "start" if moved_start else "last_day" if last_day else "end"
            raise FieldError(field_name, problem)


def _usage_left_out(
    session: Session, period: AllocationPeriod, start: dt.date, end: dt.date
) -> str:
    """What usage the period's pools count now that [start, end) would leave
    out, in words ("" when none): usage is never deleted, but outside its
    period no pool of it counts it."""
    pools = select(AllocationPool.resource_pool_id).where(
        AllocationPool.period_id == period.id
    )
    left_out = (
        select(Usage.day, Usage.quantity, Resource.resource_pool_id)
        .join(Resource, Resource.id == Usage.resource_id)
        .where(
            Resource.resource_pool_id.in_(pools),
            Usage.day >= period.start,
            Usage.day < period.end,
            or_(Usage.day < start, Usage.day >= end),
        )
        .subquery()
    )
    days, first, last = session.execute(
        select(
            func.count(distinct(left_out.c.day)),
            func.min(left_out.c.day),
            func.max(left_out.c.day),
        )
    ).one()
    if not days:
        return ""
    rows = session.execute(
        select(
            ResourcePool.name,
            ResourcePool.units,
            ResourcePool.function,
            func.sum(left_out.c.quantity),
            func.max(left_out.c.quantity),
        )
        .join(ResourcePool, ResourcePool.id == left_out.c.resource_pool_id)
        .group_by(ResourcePool.id, ResourcePool.name, ResourcePool.units)
        .order_by(ResourcePool.name)
    ).all()
    first, last = _as_date(first), _as_date(last)
    amounts = ", ".join(
        f"{humanise(total, units)} of {name}"
        if function == FUNCTION_SUM
        else f"a peak of {humanise(peak, units)} of {name}"
        for name, units, function, total, peak in rows
    )
    return (
        f"the new dates leave out usage this period counts now: {amounts}, on"
        f" {days} day{'s' if days != 1 else ''} from {first.isoformat()} to"
        f" {last.isoformat()}. Usage is never deleted, but outside the period"
        " none of its pools counts it: keep those days in, or make another"
        " period for them first"
    )


def _as_date(value: Any) -> dt.date:
    # SQLite may hand an aggregate of dates back as text.
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _name() -> Field:
    return Field("name", "string")


def _description() -> Field:
    return Field(
        "description",
        "string",
        required=False,
        max_length=DESCRIPTION_LENGTH,
        default="",
    )


COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        "projects",
        Project,
        (
            _name(),
            _description(),
            Field(
                "parent_id", "reference", required=False, nullable=True, model=Project
            ),
            Field(
                "allocation_mode",
                "choice",
                required=False,
                choices=ALLOCATION_MODES,
                default="private",
            ),
            Field("start_date", "date", required=False, nullable=True),
            Field("end_date", "date", required=False, nullable=True),
        ),
        unique=(("name",),),
        unique_folded=("name",),
        check=_check_project,
    ),
    Collection(
        "schemes",
        Scheme,
        (
            _name(),
            _description(),
            Field("opened", "date"),
            Field("closed", "date", required=False, nullable=True),
        ),
        unique=(("name",),),
        check=_in_order("opened", "closed"),
    ),
    Collection(
        "grants",
        Grant,
        (
            Field("project_id", "reference", model=Project),
            Field("scheme_id", "reference", model=Scheme),
            _description(),
            Field("date", "date"),
            Field("begins", "date"),
            Field("expires", "date"),
        ),
        check=_in_order("begins", "expires"),
    ),
    Collection(
        "resource-pools",
        ResourcePool,
        (
            _name(),
            Field("units", "unit", max_length=40),
            Field(
                "function",
                "choice",
                required=False,
                choices=POOL_FUNCTIONS,
                default="sum",
            ),
        ),
        unique=(("name",),),
        check=_check_resource_pool,
    ),
    Collection("machines", Machine, (_name(), _description()), unique=(("name",),)),
    Collection(
        "resources",
        Resource,
        (
            Field("machine_id", "reference", model=Machine),
            Field("resource_pool_id", "reference", model=ResourcePool),
            _name(),
            Field(
                "scaling_factor", "number", required=False, positive=True, default=1.0
            ),
            Field("quantity", "quantity", required=False, nullable=True),
        ),
        unique=(("machine_id", "resource_pool_id", "name"),),
        check=_check_resource,
    ),
    Collection(
        "periods",
        AllocationPeriod,
        (
            _name(),
            Field("start", "date"),
            Field("end", "date", required=False),
            Field("last_day", "date", required=False, virtual=True),
        ),
        unique=(("name",),),
        check=_check_period,
    ),
    Collection(
        "allocation-pools",
        AllocationPool,
        (
            Field("project_id", "reference", model=Project),
            Field("period_id", "reference", model=AllocationPeriod),
            Field("resource_pool_id", "reference", model=ResourcePool),
        ),
        unique=(("project_id", "period_id", "resource_pool_id"),),
    ),
    Collection(
        "allocations",
        Allocation,
        (
            Field("grant_id", "reference", model=Grant),
            Field("allocation_pool_id", "reference", model=AllocationPool),
            Field("quantity", "quantity"),
            _description(),
        ),
        check=_check_allocation,
    ),
    Collection(
        "account-maps",
        AccountMap,
        (
            Field("account", "string", lower=True),
            Field("project_id", "reference", model=Project),
        ),
        unique=(("account",),),
    ),
)


# --- the same records on pages ---


def field_label(spec: Field) -> str:
    """Return a field's name as a page shows it (``parent_id`` → ``Parent``)."""
    name = spec.name.removesuffix("_id").replace("_", " ")
    return name[:1].upper() + name[1:]


def form_fields(collection: Collection) -> tuple[Field, ...]:
    """Return the fields a page's form edits (a period by its last day)."""
    if collection.model is AllocationPeriod:
        return tuple(spec for spec in collection.fields if spec.name != "end")
    return collection.fields


def form_body(
    collection: Collection, form: Any, existing: Any = None
) -> dict[str, Any]:
    """Turn a submitted form into the JSON body the API would take.

    Empty inputs mean "default" on create and "none" (or unchanged, for
    required fields) on edit; numbers and ids are read from text, wrongly typed
    text raising FieldError as the API would.
    """
    body: dict[str, Any] = {}
    for spec in form_fields(collection):
        raw = form.get(spec.name, "")
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            if existing is None or spec.virtual:
                continue  # a default, or "is required" from the field rules
            if spec.nullable:
                body[spec.name] = None
            elif spec.kind == "string":
                body[spec.name] = ""
            elif spec.required:
                raise FieldError(spec.name, "is required")
            continue
        if spec.kind == "number":
            try:
                body[spec.name] = float(text.replace(",", ""))
            except ValueError:
                raise FieldError(spec.name, "must be a number") from None
        elif spec.kind == "reference":
            if not (text.isascii() and text.isdigit()) or len(text) > 9:
                raise FieldError(spec.name, "must be one of the choices")
            body[spec.name] = int(text)
        else:
            body[spec.name] = text
    return body


def form_values(collection: Collection, record: Any) -> dict[str, str]:
    """Return a record's fields as the text its edit form starts with."""
    values: dict[str, str] = {}
    for spec in form_fields(collection):
        if spec.name == "last_day":
            value = record.end - dt.timedelta(days=1)
        else:
            value = getattr(record, spec.name)
        if value is None:
            values[spec.name] = ""
        elif isinstance(value, float):
            values[spec.name] = f"{value:g}" if abs(value) < 1e15 else repr(value)
        elif isinstance(value, dt.date):
            values[spec.name] = value.isoformat()
        else:
            values[spec.name] = str(value)
    return values


def record_label(session: Session, record: Any) -> str:
    """Name a record for a choice list or a confirmation."""
    if isinstance(record, Grant):
        project = session.get(Project, record.project_id)
        scheme = session.get(Scheme, record.scheme_id)
        return f"{project.name} · {scheme.name} ({record.begins.isoformat()})"
    if isinstance(record, AllocationPool):
        return (
            f"{record.project.name} · {record.period.name} · "
            f"{record.resource_pool.name}"
        )
    if isinstance(record, Resource):
        return f"{record.machine.name} · {record.name} ({record.resource_pool.name})"
    if isinstance(record, Allocation):
        pool = session.get(AllocationPool, record.allocation_pool_id)
        return f"{record_label(session, pool)}: {record.quantity:g}"
    if isinstance(record, AccountMap):
        return f"{record.account} → {session.get(Project, record.project_id).name}"
    return getattr(record, "name", f"#{record.id}")


def choices(session: Session, spec: Field) -> list[tuple[int, str]]:
    """Return (id, label) of every record a reference field may point to."""
    records = session.scalars(select(spec.model).order_by(spec.model.id)).all()
    return sorted(
        ((record.id, record_label(session, record)) for record in records),
        key=lambda pair: pair[1].lower(),
    )


def collection_named(name: str) -> Collection | None:
    """Return the collection called ``name`` (as in its URL), if any."""
    return next((c for c in COLLECTIONS if c.name == name), None)
