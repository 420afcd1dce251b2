"""Phone numbers and queue tokens kept out of logs and operator output.

A phone number is personal data; a queue token (or a JWT) is a bearer credential for
someone's place in line. Where they would be printed they are masked instead: a phone
number keeps its last four digits and a token its first four characters, enough to
match a complaint to a record without exposing either.
"""

import re
from typing import Any

# API.md §1 phone numbers: an optional + and 8-15 digits. Without the +, a domestic number
# starts with 0 and an international one has 11 digits or more, which leaves amounts
# (at most 9 digits) and Unix times in seconds (10) alone.
PHONE = re.compile(r"(?<![\w.+-])(?:\+\d{8,15}|0\d{7,14}|[1-9]\d{10,14})(?![\w.-])")
# A credential written after its name (`token=…`, `"queue_token": "…"`, `X-Queue-Token: …`,
# `Bearer …`): the name stays, the value is masked.
NAMED_TOKEN = re.compile(
    r"""(?i)((?:token|bearer)(?:["']?\s*[:=]\s*["']?|\s+))([A-Za-z0-9_\-.~+/]{8,}=*)""")
# Keys of structured data (event payloads, headers) whose string values are tokens.
TOKEN_KEYS = frozenset({"token", "queue_token", "x-queue-token", "authorization"})
VISIBLE = 4
HIDDEN_DIGIT = re.compile(rf"\d(?=\d{{{VISIBLE}}})")  # every digit with four more after it


def mask_phone(number: str) -> str:
    """'+821012345678' -> '+********5678': every digit but the last four hidden."""
    return HIDDEN_DIGIT.sub("*", number)


def mask_token(token: str) -> str:
    """The first four characters and an ellipsis: the length is not told either."""
    return token[:VISIBLE] + "…"


def redact_text(text: str) -> str:
    """`text` with every phone number and named token in it masked."""
    text = NAMED_TOKEN.sub(lambda match: match[1] + mask_token(match[2]), text)
    return PHONE.sub(lambda match: mask_phone(match[0]), text)


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of a JSON-like `value` with tokens (by key) and phone numbers (anywhere) masked."""
    if isinstance(value, dict):
        return {name: redact(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        if key is not None and key.lower() in TOKEN_KEYS:
            return mask_token(value)
        return redact_text(value)
    return value
