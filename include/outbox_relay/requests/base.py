"""What every operator request shares: one pydantic model per operation is the only definition of its
fields. The DAG's Params, the CLI's arguments and the Outbox page's form checks are all read from it, and
one error type names a bad value the way the surface asking for it does (``param 'since'``, ``--since``)."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic.fields import FieldInfo

from outbox_relay.errors import ConfigurationError
from outbox_relay.times import parse_time

Surface = Literal["param", "cli"]
Namer = Callable[[str], str]
R = TypeVar("R", bound="OperatorRequest")


@dataclass(frozen=True)
class Option:
    """How a request field is asked for. ``flags``: the CLI's (default ``--field-name``); ``repeat``: a CLI
    flag given once per item; ``choice_flags``: one CLI flag per allowed value (``--failed``); ``cli`` /
    ``param``: whether the CLI / the DAG's Params (and the page) offer the field at all."""

    flags: tuple[str, ...] = ()
    repeat: bool = False
    choice_flags: tuple[str, ...] = ()
    positional: bool = False
    cli: bool = True
    param: bool = True


class FieldsError(ValueError):
    """A check across fields; its text names them as the surface does (built with a ``Namer``)."""

    def __init__(self, text: Callable[[Namer], str]) -> None:
        super().__init__(text(lambda name: name))
        self.text = text


class RequestError(ConfigurationError):
    """An operator's request with a bad value: each problem names the param or argument it is about."""

    def __init__(self, operation: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.operation = operation
        self.problems = problems


def _time_or_none(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return None if str(value).strip() == "" else parse_time(str(value))


def _time(value: Any) -> datetime:
    moment = _time_or_none(value)
    if moment is None:
        raise ValueError("is required (an ISO date/time)")
    return moment


def split_words(value: Any) -> tuple[str, ...]:
    """A list, or one string of comma/space/newline separated items (how a form field holds ids)."""
    items: Iterable[Any] = (
        value if isinstance(value, list | tuple) else str(value or "").replace(",", " ").split()
    )
    return tuple(str(i).strip() for i in items if str(i).strip())


ISO_HELP = "ISO date/time, e.g. 2026-11-20T06:00; in the service's db_time_zone unless it has an offset"
# Times and id lists are typed as text by operators: their Params are text fields, the models parse them.
IsoTime = Annotated[datetime, BeforeValidator(_time), WithJsonSchema({"type": "string", "minLength": 1})]
OptionalIsoTime = Annotated[
    datetime | None, BeforeValidator(_time_or_none), WithJsonSchema({"type": ["null", "string"]})
]
Words = Annotated[tuple[str, ...], BeforeValidator(split_words), WithJsonSchema({"type": ["null", "string"]})]
Reason = Annotated[str, Field(min_length=1, description="Why (kept in the row history).")]
TimeBudget = Annotated[
    float | None,
    Field(ge=1, description="Seconds this run may keep working; empty = the service's time_budget_seconds."),
]


def option_of(field: FieldInfo) -> Option:
    return next((m for m in field.metadata if isinstance(m, Option)), Option())


class OperatorRequest(BaseModel):
    """One operation's request. Empty values (None, "") mean "not given": the field's default applies."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    operation: ClassVar[str]

    @classmethod
    def flag_of(cls, name: str) -> str:
        field = cls.model_fields[name]
        option = option_of(field)
        if option.positional:
            return name
        return (option.flags or (f"--{name.replace('_', '-')}",))[0]

    @classmethod
    def namer(cls, surface: Surface) -> Namer:
        return cls.flag_of if surface == "cli" else repr

    @classmethod
    def parse(cls: type[R], values: Mapping[str, Any], surface: Surface = "param") -> R:
        """The request from a DAG run's params, a page form or the CLI's arguments; every bad value is named
        in one ``RequestError``."""
        given = {k: v for k, v in values.items() if k in cls.model_fields and not _empty(v)}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise RequestError(cls.operation, [cls._problem(e, surface) for e in exc.errors()]) from None

    @classmethod
    def _problem(cls, error: Mapping[str, Any], surface: Surface) -> str:
        cause = (error.get("ctx") or {}).get("error")
        where = f"{cls.operation} {'param ' if surface == 'param' else ''}".rstrip()
        if not error["loc"]:
            plain: Namer = cls.flag_of if surface == "cli" else str  # a sentence names fields plainly
            text = cause.text(plain) if isinstance(cause, FieldsError) else str(cause or error["msg"])
            return f"{where}{'s' if surface == 'param' else ''}: {text}"
        name = cls.namer(surface)(str(error["loc"][0]))
        if error["type"] in {"int_parsing", "float_parsing", "int_from_float"}:
            return f"{where} {name}: {error['input']!r} is not a number"
        if error["type"] == "missing":
            return f"{where} {name} is required"
        bound = _BOUNDS.get(error["type"])
        if bound is not None:
            limit = next(iter((error.get("ctx") or {}).values()), "?")
            return f"{where} {name} must be {bound} {limit} (not {error['input']})"
        text = str(cause) if cause is not None else error["msg"]
        return f"{where} {name}: {text}" if not text.startswith("is ") else f"{where} {name} {text}"

    @classmethod
    def param_fields(cls) -> dict[str, FieldInfo]:
        return {n: f for n, f in cls.model_fields.items() if option_of(f).param}

    @classmethod
    def cli_fields(cls) -> dict[str, FieldInfo]:
        return {n: f for n, f in cls.model_fields.items() if option_of(f).cli}

    @classmethod
    def param_schemas(cls) -> dict[str, tuple[Any, str, dict[str, Any]]]:
        """Each Param's default, description and JSON Schema (plain JSON: the glue wraps them in Params)."""
        properties = _properties(cls)
        schemas = {}
        for name, field in cls.param_fields().items():
            wanted = {k: v for k, v in properties[name].items() if k not in {"title", "default"}}
            schema = _nullable(copy.deepcopy(wanted))  # the cached schema stays as pydantic built it
            schema.pop("description", None)
            default = field.get_default() if not field.is_required() else ""
            default = None if default == () else default  # an empty list: an empty text field
            schemas[name] = (
                list(default) if isinstance(default, tuple) else default,
                field.description or "",
                schema,
            )
        return schemas


_BOUNDS = {
    "greater_than_equal": "at least",
    "greater_than": "more than",
    "less_than_equal": "at most",
    "less_than": "less than",
}


@functools.cache
def _properties(request: type[OperatorRequest]) -> dict[str, Any]:
    """A model's JSON Schema properties, built once per model: the DAG processor asks for them on every
    re-parse of every service's DAGs (pydantic's schema generation costs about 0.4 ms a model)."""
    return dict(request.model_json_schema(mode="validation")["properties"])


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` (pydantic's Optional) as ``type: [null, X]``, which Airflow's form renders."""
    options = schema.pop("anyOf", None)
    if not options:
        return schema
    kinds = [o for o in options if o.get("type") != "null"]
    if len(kinds) != 1:
        return {**schema, "anyOf": options}
    inner = dict(kinds[0])
    return {**schema, **inner, "type": ["null", inner["type"]]}
