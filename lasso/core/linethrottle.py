"""Log lines for events that can come by the thousand: the first now, then one per window.

A failover, or an inbound client over its limit, can happen thousands of times a
second; metrics count every one, the log says it once and then sums it up.
Theory of operation, per key (e.g. chain, from provider, to provider):

- the first event with no window open is logged at once (:meth:`offer` True) and
  opens a window of ``window_s``;
- later events inside the window are counted, not logged (:meth:`offer` False);
- when the window ends (:meth:`due`, which the shell asks every ``window_s``), a
  key with events counted gets one summary line with the count and a new window;
  a key with none is forgotten, so its next event is logged at once again.

Every event is therefore in exactly one line: its own, or one summary's count.
At most ``max_keys`` keys are tracked; an event of a new key past that is counted
in ``overflow`` (reported by :meth:`due` under the key ``None``), never logged
on its own, so many distinct keys cannot flood the log either.

Pure: the shell passes ``now``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["LineThrottle"]

K = TypeVar("K", bound=Hashable)


class _Window:
    __slots__ = ("count", "ends")

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.count = 0


class LineThrottle(Generic[K]):
    """See the module docstring."""

    def __init__(self, window_s: float = 10.0, max_keys: int = 1024) -> None:
        if window_s <= 0 or max_keys < 1:
            raise ValueError("window_s and max_keys must be positive")
        self.window_s = window_s
        self._max_keys = max_keys
        self._windows: dict[K, _Window] = {}
        self.overflow = 0

    def offer(self, key: K, now: float) -> bool:
        """One event of ``key``: True if it gets a line of its own now."""
        window = self._windows.get(key)
        if window is not None and now < window.ends:
            window.count += 1
            return False
        if window is not None and window.count:
            window.count += 1  # the window ended unsummed: this one joins its summary
            return False
        if window is None and len(self._windows) >= self._max_keys:
            self.overflow += 1
            return False
        self._windows[key] = _Window(now + self.window_s)
        return True

    def keys(self) -> list[K]:
        """The keys with a window open."""
        return list(self._windows)

    def due(self, now: float) -> list[tuple[K | None, int]]:
        """Summaries whose window has ended: ``(key, events not logged)``; the
        overflow as ``(None, count)``."""
        summaries: list[tuple[K | None, int]] = []
        for key, window in list(self._windows.items()):
            if now < window.ends:
                continue
            if window.count:
                summaries.append((key, window.count))
                window.count, window.ends = 0, now + self.window_s
            else:
                del self._windows[key]
        if self.overflow:
            summaries.append((None, self.overflow))
            self.overflow = 0
        return summaries
