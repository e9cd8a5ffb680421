"""A scenario's SLO thresholds, and the breaches of a run.

A threshold names one numeric field of :class:`battle.slo.Slos`, an operator and a bound::

    parse_threshold("success_rate >= 0.999")
    Threshold("latency_p99_s", "<=", 2.0)

:func:`evaluate` returns every breach with a readable message. A SLO with no data (``None``)
breaches every threshold on it: a run that measured nothing has proven nothing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import msgspec

from battle.slo import Slos

Op = Literal["<=", ">=", "==", "<", ">"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}

#: The Slos fields a threshold may name: the numeric ones.
SLO_NAMES: frozenset[str] = frozenset(
    name for name in Slos.__struct_fields__ if name not in ("subscriptions",)
)


class Threshold(msgspec.Struct, frozen=True):
    slo: str
    op: Op
    value: float

    def __post_init__(self) -> None:
        if self.slo not in SLO_NAMES:
            raise ValueError(f"unknown SLO {self.slo!r}; known: {', '.join(sorted(SLO_NAMES))}")
        if self.op not in _OPS:
            raise ValueError(f"unknown operator {self.op!r}")

    def __str__(self) -> str:
        return f"{self.slo} {self.op} {self.value:g}"


class Breach(msgspec.Struct, frozen=True):
    threshold: Threshold
    actual: float | None  # None: the SLO had no data
    message: str


def parse_threshold(text: str) -> Threshold:
    """``"<slo> <op> <number>"``, e.g. ``"gaps == 0"``."""
    parts = text.split()
    if len(parts) != 3 or parts[1] not in _OPS:
        raise ValueError(f"threshold {text!r} is not '<slo> <op> <number>' (op: <= >= == < >)")
    name, op, value = parts
    try:
        bound = float(value)
    except ValueError:
        raise ValueError(f"threshold {text!r}: {value!r} is not a number") from None
    return Threshold(name, op, bound)  # type: ignore[arg-type]  # op checked against _OPS


def thresholds(*texts: str) -> tuple[Threshold, ...]:
    return tuple(parse_threshold(text) for text in texts)


def check(slos: Slos, threshold: Threshold) -> Breach | None:
    """The breach of one threshold, or None when it holds."""
    actual = getattr(slos, threshold.slo)
    if actual is None:
        return Breach(
            threshold,
            None,
            f"{threshold.slo}: no data (nothing this SLO measures was recorded), "
            f"so '{threshold}' is not met",
        )
    if _OPS[threshold.op](float(actual), threshold.value):
        return None
    return Breach(threshold, float(actual), f"{threshold.slo} = {actual:g} breaches '{threshold}'")


def evaluate(slos: Slos, declared: Iterable[Threshold]) -> list[Breach]:
    """Every breach of ``declared`` by ``slos``, in declaration order; empty means pass."""
    return [b for b in (check(slos, t) for t in declared) if b is not None]


def summary(breaches: Sequence[Breach]) -> str:
    if not breaches:
        return "all SLO thresholds met"
    return "\n".join(f"BREACH {b.message}" for b in breaches)
