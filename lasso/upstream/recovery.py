"""The shell of recovery mode (see :mod:`lasso.core.recovery`) for one chain.

:class:`RecoveryWatch` answers "is the chain in recovery?" from the chain's own
routing snapshot, and lets a request that found nothing available wake every
provider's prober at once. Each :class:`~lasso.upstream.provider.Provider` waits
in :meth:`RecoveryWatch.pause` between its probing rounds.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import trio

from lasso.core.recovery import RecoveryPolicy

__all__ = ["RecoveryWatch"]


class RecoveryWatch:
    """Whether a chain has no provider channel available; a wake-up for its probers."""

    def __init__(
        self,
        available: Callable[[float], bool],
        policy: RecoveryPolicy,
        rng: random.Random,
    ) -> None:
        self._available = available
        self.policy = policy
        self._rng = rng
        self._alarm = trio.Event()
        self._last_alarm: float | None = None
        self.alarms = 0

    def active(self, now: float) -> bool:
        """True while no provider channel of the chain can take a request."""
        return not self._available(now)

    def alarm(self, now: float) -> None:
        """A request found nothing available: wake every prober now (rate-limited)."""
        if self.policy.alarm_due(now, self._last_alarm):
            self._last_alarm = now
            self.alarms += 1
            self._alarm.set()
            self._alarm = trio.Event()

    async def pause(self, idle_s: float) -> None:
        """Wait before the next probing round: ``idle_s`` normally, the short
        jittered interval while recovering, and never past an alarm."""
        alarm = self._alarm
        now = trio.current_time()
        delay_s = self.policy.probe_delay_s(self._rng) if self.active(now) else idle_s
        with trio.move_on_after(delay_s):
            await alarm.wait()
