"""Loading a deployable's settings, failing fast on bad values.

Settings come from the environment; what it does not name comes from the running
`make run` of the project the command is started in (services/common/stack_env.py),
so a command run beside the stack needs nothing sourced. This is the one place that
decides it, for every entry point.
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from services.common.stack_env import StackFile, find_stack_file

S = TypeVar("S", bound=BaseSettings)
_announced: set[Path] = set()


class InvalidSettings(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


def describe(error: ValidationError) -> str:
    """Turn a pydantic error into one line naming the environment variables at fault."""
    parts = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        parts.append(f"{name}: {item['msg']}")
    return "invalid setting " + "; ".join(parts)


def _missing_hint(stack: StackFile | None) -> str:
    if stack is None:
        return ("; set them in the environment, or start `make run` in this project"
                " (commands run there read its .data/stack.env)")
    if not stack.running:
        return f"; {stack.path} is left from a `make run` that has stopped: start it again or set them"
    return ""


def _from_stack(cls: type[BaseSettings], stack: StackFile | None, named: set[str]) -> dict[str, str]:
    """The running stack's values for the fields of `cls` that the environment does not name."""
    if stack is None or not stack.running:
        return {}
    fields = {name.upper() for name in cls.model_fields}
    found = {key.lower(): value for key, value in stack.values().items()
             if key.upper() in fields and key.upper() not in named}
    if found and stack.path not in _announced:
        _announced.add(stack.path)
        print(f"settings: from {stack.path} (the running `make run`, pid {stack.running_pid})"
              " for what the environment does not set", file=sys.stderr)
    return found


def load_settings(cls: type[S], defaults: Mapping[str, str] | None = None) -> S:
    """Settings from the environment, else the running stack, else `defaults` (by variable name)."""
    named = {key.upper() for key in os.environ}  # pydantic-settings reads names in any case
    stack = find_stack_file(Path.cwd())
    values: dict[str, Any] = {name.lower(): value for name, value in (defaults or {}).items()
                              if name.upper() not in named}
    values.update(_from_stack(cls, stack, named))
    try:
        return cls(**values)
    except ValidationError as error:
        hint = _missing_hint(stack) if any(e["type"] == "missing" for e in error.errors()) else ""
        raise InvalidSettings(describe(error) + hint) from None


def load_settings_or_exit(cls: type[S], defaults: Mapping[str, str] | None = None) -> S:
    """Load settings for a process entry point; print one line and exit 2 when invalid."""
    try:
        return load_settings(cls, defaults)
    except InvalidSettings as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def exit_on_help(doc: str | None) -> None:
    """`--help`: print how the deployable is configured (its module docstring), and exit."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        print((doc or "").strip())
        raise SystemExit(0)
