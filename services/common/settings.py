"""Loading a deployable's settings from the environment, failing fast on bad values."""

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class InvalidSettings(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


def describe(error: ValidationError) -> str:
    """Turn a pydantic error into one line naming the environment variables at fault."""
    parts = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        parts.append(f"{name}: {item['msg']}")
    return "invalid setting " + "; ".join(parts)


def load_settings(cls: type[S]) -> S:
    try:
        return cls()
    except ValidationError as error:
        raise InvalidSettings(describe(error)) from None


def load_settings_or_exit(cls: type[S]) -> S:
    """Load settings for a process entry point; print one line and exit 2 when invalid."""
    try:
        return load_settings(cls)
    except InvalidSettings as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def exit_on_help(doc: str | None) -> None:
    """`--help`: print how the deployable is configured (its module docstring), and exit."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print((doc or "").strip())
        raise SystemExit(0)
