"""How long an upstream asks us to wait: a Retry-After header, an error's data, or
its message. Pure: the wall clock, needed for an HTTP-date, is an argument."""

from __future__ import annotations

import math
import re
from email.utils import parsedate_to_datetime
from typing import Any, Final

MAX_TEXT_CHARS: Final = 4096
_RETRY_IN_TEXT: Final = re.compile(
    r"(?:try again|retry)(?: after| in)?\s*(\d+(?:\.\d+)?)\s*"
    r"(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)\b"
)
_UNIT_MS: Final = {"ms": 1, "millisecond": 1, "milliseconds": 1, "m": 60_000}
_SECONDS_KEYS: Final = ("retry_after", "retryAfter", "retry_after_seconds", "backoff_seconds")
_MS_KEYS: Final = ("retry_after_ms", "retryAfterMs")


def parse_retry_after_header(value: str | None, wall_now_s: float | None) -> int | None:
    """A ``Retry-After`` header (delay-seconds or HTTP-date) as milliseconds from now."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _from_http_date(value, wall_now_s)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return math.ceil(seconds * 1000)


def _from_http_date(value: str, wall_now_s: float | None) -> int | None:
    if wall_now_s is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0, math.ceil((when.timestamp() - wall_now_s) * 1000))


def retry_after_from_data(decoded: Any) -> int | None:
    """From an error's decoded ``data``: a retry field (ms or seconds), or text."""
    if isinstance(decoded, str):
        return retry_after_from_text(decoded[:MAX_TEXT_CHARS].lower())
    if not isinstance(decoded, dict):
        return None
    for keys, scale in ((_MS_KEYS, 1), (_SECONDS_KEYS, 1000)):
        for key in keys:
            value = _non_negative_number(decoded.get(key))
            if value is not None:
                return math.ceil(value * scale)
    return None


def _non_negative_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def retry_after_from_text(text: str) -> int | None:
    """From lowercased text such as "try again in 5 seconds"."""
    match = _RETRY_IN_TEXT.search(text)
    if match is None:
        return None
    amount, unit = float(match.group(1)), match.group(2)
    return math.ceil(amount * _UNIT_MS.get(unit, 60_000 if unit.startswith("min") else 1000))
