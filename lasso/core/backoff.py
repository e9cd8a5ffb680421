"""Restart pacing: jittered capped backoff, and a restart budget that quarantines.

``Backoff.delay(attempt, rng)`` is how long to wait before the next try, ``attempt``
counting consecutive failures from 0. A provider supervisor sleeps it before restarting
a crashed service, and the upstream WebSocket connection sleeps it between reconnects
(from 0 again after a link that became stable).

``RestartTracker`` is a supervisor's restart budget (Erlang's restart intensity): once
more than ``max_restarts`` restarts lie within ``window_s``, routing quarantines that
channel of the provider (its HTTP or its WebSocket) until they age out of the window,
instead of letting it flap. A WebSocket connection never crashes its service, it
reconnects by itself, so each link it loses before it became stable (a flap) is recorded
as a restart of its supervisor: a WebSocket that keeps flapping is quarantined like a
service that keeps crashing. A failed dial is not a flap. See ``docs/routing.md``,
"Supervision and quarantine".
"""

from __future__ import annotations

import random
from collections import deque

import msgspec

__all__ = ["Backoff", "RestartStatistics", "RestartTracker"]


class Backoff(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exponential backoff ``base_s · multiplier^attempt``, capped at ``cap_s``.

    Jitter only shortens a delay: the result lies in ``[raw · (1 - jitter), raw]``, so the
    cap is never exceeded and supervisors that failed together spread out.
    """

    base_s: float
    cap_s: float
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.cap_s:
            raise ValueError("need 0 < base_s <= cap_s")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def raw_delay(self, attempt: int) -> float:
        """The delay before jitter, in seconds."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        try:
            raw = self.base_s * self.multiplier**attempt
        except OverflowError:
            return self.cap_s
        return min(raw, self.cap_s)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        return self.raw_delay(attempt) * (1 - self.jitter * rng.random())


class RestartStatistics(msgspec.Struct, frozen=True):
    restarts_in_window: int
    total_restarts: int
    last_restart_at: float | None
    exceeded: bool


class RestartTracker:
    """Counts restarts in a sliding window of ``window_s`` seconds ending at ``now``.

    A restart at time ``t`` counts while ``now - t < window_s``. The budget is exceeded
    once more than ``max_restarts`` restarts are in the window.
    """

    __slots__ = ("_last", "_max_restarts", "_restarts", "_total", "_window_s")

    def __init__(self, max_restarts: int, window_s: float) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self._max_restarts = max_restarts
        self._window_s = window_s
        self._restarts: deque[float] = deque(maxlen=max_restarts + 1)
        self._total = 0
        self._last: float | None = None

    def record_restart(self, now: float) -> bool:
        """Record a restart at ``now``; True if the provider should now be quarantined."""
        self._restarts.append(now)
        self._total += 1
        self._last = now
        return self.exceeded(now)

    def exceeded(self, now: float) -> bool:
        """True while more than ``max_restarts`` restarts lie within the window."""
        if len(self._restarts) <= self._max_restarts:
            return False  # too few recorded to exceed (routing asks this per request)
        return self.restarts_in_window(now) > self._max_restarts

    def restarts_in_window(self, now: float) -> int:
        restarts = self._restarts
        while restarts and now - restarts[0] >= self._window_s:
            restarts.popleft()
        return len(restarts)

    def reset(self) -> None:
        """Forget the window, e.g. when a quarantined provider is let back in."""
        self._restarts.clear()

    def statistics(self, now: float) -> RestartStatistics:
        in_window = self.restarts_in_window(now)
        return RestartStatistics(
            restarts_in_window=in_window,
            total_restarts=self._total,
            last_restart_at=self._last,
            exceeded=in_window > self._max_restarts,
        )
