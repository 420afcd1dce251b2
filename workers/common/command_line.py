"""What the operators' commands (booking-dlq, booking-relay republish) share."""

import re
from datetime import timedelta

DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CliError(Exception):
    """An error reported as one line on stderr with exit status `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '7d', '1h30m' → timedelta; CliError(code 2) otherwise."""
    parts = DURATION.findall(text.strip().lower())
    if not parts or "".join(number + unit for number, unit in parts) != text.strip().lower():
        raise CliError(f"bad duration {text!r}: use e.g. 90s, 15m, 2h, 7d or 1h30m", code=2)
    return timedelta(seconds=sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts))
