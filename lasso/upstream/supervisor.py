"""Keep one long-lived service running, whatever it does.

A service crashes, the supervisor records the failure, sleeps a jittered,
capped backoff and starts it again. Too many restarts inside a window puts
the service in *quarantine* (routing treats its provider as unavailable) but
the supervisor keeps retrying at the capped delay. A service that restarts
itself internally (the WebSocket connection reconnects on its own) reports
each unhealthy restart with :meth:`Supervisor.record_restart`, so it counts
towards quarantine like a crash. Only ``Exception`` is
caught: cancellation and ``KeyboardInterrupt`` always propagate, so a
supervisor can never keep the daemon from shutting down, and a crash can
never take the daemon down.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import msgspec
import trio

from lasso import redact
from lasso.core.backoff import Backoff, RestartTracker

log = logging.getLogger("lasso.supervisor")

Service = Callable[[], Awaitable[None]]


class SupervisorStatistics(msgspec.Struct, frozen=True):
    name: str
    running: bool
    restarts: int
    quarantined: bool
    last_error: str | None


class Supervisor:
    """Runs ``service`` forever, restarting it with backoff after each crash."""

    def __init__(
        self,
        name: str,
        service: Service,
        *,
        backoff: Backoff,
        tracker: RestartTracker,
        rng: random.Random,
    ) -> None:
        self.name = name
        self._service = service
        self._backoff = backoff
        self._tracker = tracker
        self._rng = rng
        self._running = False
        self._restarts = 0
        self._failures_in_row = 0
        self._last_error: str | None = None

    @property
    def quarantined(self) -> bool:
        """Too many restarts inside the window; lifts once they age out of it."""
        return self._tracker.exceeded(trio.current_time())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                self._running = True
                await self._service()
                self._failures_in_row = 0
                return
            except Exception as exc:  # a crash is recorded, never propagated
                self._record_crash(exc)
            finally:
                self._running = False
            await trio.sleep(self._backoff.delay(self._failures_in_row, self._rng))

    def _record_crash(self, exc: Exception) -> None:
        self._failures_in_row += 1
        self._count(f"{type(exc).__name__}: {exc}")
        log.warning("service %s crashed (%s); restarting", self.name, self._last_error)

    def record_restart(self, reason: str) -> None:
        """The service restarted itself after ``reason``: count it like a crash."""
        quarantined = self.quarantined
        self._count(reason)
        if self.quarantined and not quarantined:
            log.warning("service %s restarts too often (%s): quarantined", self.name, reason)

    def _count(self, reason: str) -> None:
        self._restarts += 1
        self._last_error = redact.scrub(reason)  # /health shows it
        self._tracker.record_restart(trio.current_time())

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            name=self.name,
            running=self._running,
            restarts=self._restarts,
            quarantined=self.quarantined,
            last_error=self._last_error,
        )
