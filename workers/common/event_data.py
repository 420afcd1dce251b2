"""Turn an envelope's `data` into the frozen event dataclass it claims to be, strictly."""

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar
from uuid import UUID

E = TypeVar("E")


class MalformedEvent(ValueError):
    """The event's data does not fit its type; retrying cannot make it fit."""


def parse_event(cls: type[E], data: Mapping[str, Any]) -> E:
    """Build `cls` from JSON data; unknown keys are ignored (a newer producer may add some)."""
    values = {}
    for name, hint in _fields(cls):
        if name not in data:
            raise MalformedEvent(f"{cls.__name__}: field {name!r} is missing")
        values[name] = _convert(cls.__name__, name, hint, data[name])
    return cls(**values)


_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field's name and resolved type, once per event class (resolving them took a
    twentieth of the saga's CPU when done per message)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple((spec.name, hints[spec.name]) for spec in dataclasses.fields(cls))
    return found


def _convert(event: str, name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (hint,) = [option for option in options if option is not type(None)]
        return _convert(event, name, hint, value)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise MalformedEvent(f"{event}: field {name!r} has an unknown value {value!r}")
        return value
    if hint is UUID:
        try:
            return UUID(value) if isinstance(value, str) else _wrong(event, name, "a UUID", value)
        except ValueError:
            _wrong(event, name, "a UUID", value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        _wrong(event, name, "an integer", value)
    if hint is str and not isinstance(value, str):
        _wrong(event, name, "a string", value)
    return value


def _wrong(event: str, name: str, expected: str, value: Any) -> typing.NoReturn:
    raise MalformedEvent(f"{event}: field {name!r} must be {expected}, got {value!r}")
