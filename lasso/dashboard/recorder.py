"""The dashboard's memory of recent calls: routing decisions and failovers, per chain.

A request observer (:attr:`lasso.opsevents.OpsEvents.request_observers`) gets every
finished call's :class:`lasso.callmeta.CallMeta`. It keeps the last ``keep`` calls of
each (profile, chain) as small tuples in a ring, and, in a second ring, the last
``keep`` calls that failed over (one or more attempts failed, another provider
answered), so a busy chain's plain traffic cannot wash its failovers out.

Cost on the hot path: one tuple of references and one or two deque appends per call
(about 0.5 µs), no clock read (the call's own ``ended`` time is kept, trio's clock; the
snapshot turns it into wall time); rows are built when a snapshot reads them. Memory
is bounded: ``keep`` rows per ring, at most ``MAX_CHAINS`` chains, and method names cut
to ``MAX_METHOD`` characters (a client chooses them).

Only what the call record says is kept: provider ids, transports, the failed attempts'
categories. Never an attempt's error message, which may quote an upstream's words.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from lasso.callmeta import CallMeta
    from lasso.core.router import RoutePlan
    from lasso.outcome import Outcome

__all__ = ["MAX_CHAINS", "MAX_METHOD", "Recorder", "Row"]

#: Rings for at most this many (profile, chain) keys; calls of more are not kept.
MAX_CHAINS = 256
#: Method names are kept up to this many characters.
MAX_METHOD = 64


class Row(NamedTuple):
    """One finished call as the dashboard shows it."""

    ended: float  # trio.current_time() seconds
    method: str
    strategy: str  # "" when Lasso answered itself (no plan)
    provider: str  # "" when no provider answered
    transport: str  # the upstream transport, "" when none
    client_transport: str  # how the client called: http or ws
    result: str  # ok, node_error, error, internal
    code: int | None
    latency_us: int  # end to end
    failed: tuple[tuple[str, str, str], ...]  # (provider, transport, category) per failed attempt


#: What ``observe`` keeps: references only (no conversion on the hot path); the plan and
#: outcome are finished and no longer change. Turned into a :class:`Row` when read.
_Raw = tuple[float | None, float, str, "RoutePlan | None", "Outcome | None", str, str, "int | None"]


class Recorder:
    """Rings of recent calls and failovers per (profile, chain)."""

    __slots__ = ("_calls", "_failovers", "keep", "observed")

    def __init__(self, keep: int = 50) -> None:
        self.keep = keep
        self.observed = 0
        self._calls: dict[tuple[str, str], deque[_Raw]] = {}
        self._failovers: dict[tuple[str, str], deque[_Raw]] = {}

    def observe(self, meta: CallMeta) -> None:
        """The request observer: remember one finished call (about 0.5 µs)."""
        key = (meta.profile, meta.chain)
        calls = self._calls.get(key)
        if calls is None:
            if len(self._calls) >= MAX_CHAINS:
                return
            calls = self._calls[key] = deque(maxlen=self.keep)
            self._failovers[key] = deque(maxlen=self.keep)
        self.observed += 1
        outcome = meta.outcome
        raw = (
            meta.ended,
            meta.started,
            meta.method[:MAX_METHOD],
            meta.plan,
            outcome,
            meta.transport,
            meta.result,
            meta.code,
        )
        calls.append(raw)
        if outcome is not None and outcome.attempts and outcome.provider is not None:
            self._failovers[key].append(raw)

    def calls(self, profile: str, chain: str) -> list[Row]:
        """The chain's recent calls, newest first."""
        return [_row(raw) for raw in reversed(self._calls.get((profile, chain), ()))]

    def failovers(self, profile: str, chain: str) -> list[Row]:
        """The chain's recent failovers, newest first."""
        return [_row(raw) for raw in reversed(self._failovers.get((profile, chain), ()))]


def _row(raw: _Raw) -> Row:
    ended, started, method, plan, outcome, client_transport, result, code = raw
    ended = started if ended is None else ended
    provider = transport = ""
    failed: tuple[tuple[str, str, str], ...] = ()
    if outcome is not None:
        provider, transport = outcome.provider or "", outcome.transport or ""
        failed = tuple((a.provider, a.transport, a.category) for a in outcome.attempts)
    return Row(
        ended,
        method,
        "" if plan is None else plan.strategy.value,
        provider,
        transport,
        client_transport,
        result,
        code,
        round((ended - started) * 1_000_000),
        failed,
    )
