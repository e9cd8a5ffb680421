"""How the report writes a value: one formatter per kind, ``None`` always as "no data".

A skipped scenario has no SLOs at all; its cells are :data:`NOT_RUN`, so "no data" only ever
means "ran, but nothing this SLO measures was recorded".
"""

from __future__ import annotations

import math

NO_DATA = "no data"
NOT_RUN = "-"


def seconds(value: float | None) -> str:
    """A duration: milliseconds below one second, else seconds."""
    if value is None:
        return NO_DATA
    if value == 0:
        return "0 s"
    if abs(value) < 1.0:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def rate(value: float | None) -> str:
    """A ratio as a percentage, rounded down so 99.996 % never reads "100.00 %"."""
    if value is None:
        return NO_DATA
    if value >= 1.0:
        return "100 %"
    return f"{math.floor(value * 10000) / 100:.2f} %"


def count(value: int | None) -> str:
    return NO_DATA if value is None else str(value)


def pair(first: int | None, second: int | None) -> str:
    """Two counts as ``a/b``; "no data" only when both are missing."""
    if first is None and second is None:
        return NO_DATA
    return f"{count(first)}/{count(second)}"


def mebibytes(value: int | None) -> str:
    if value is None:
        return NO_DATA
    return f"{value / 2**20:.1f} MiB"


def number(value: float | None) -> str:
    """A raw SLO value (an integer count or a float) as in a threshold."""
    if value is None:
        return NO_DATA
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


def clip(text: str, width: int) -> str:
    """``text`` on one line, at most ``width`` characters (an ellipsis marks a cut)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
