"""The worker group's bookkeeping, for the parent process (``lasso.workers.supervisor``).

Theory of operation: the parent runs ``count`` slots; each holds at most one worker
process at a time. A slot is *starting* from its spawn until the worker reports
``ready`` (its front end accepts on the shared socket), then *up*; each up worker
pings every ``PING_S``. The parent pings systemd's watchdog only while every slot is
up and pinged within ``stale_s``: a dead or wedged worker stops the pings (and is
killed and restarted, :meth:`WorkerTable.stale`). A worker that exits is restarted
after a backoff whose attempt count resets once a worker stayed up ``stable_s``.

Pure: times are arguments (``trio.current_time()`` in the shell).
"""

from __future__ import annotations

import msgspec

__all__ = ["PING_S", "Slot", "WorkerTable"]

#: Seconds between a worker's pings to its parent.
PING_S = 1.0


class Slot(msgspec.Struct, kw_only=True):
    index: int
    pid: int | None = None
    ready: bool = False
    started_at: float = 0.0
    last_ping: float = 0.0
    #: Consecutive failed runs (exits before ``stable_s`` of uptime): the backoff attempt.
    failures: int = 0
    restarts: int = 0


class WorkerTable:
    """Every slot's state; the decisions the parent acts on."""

    def __init__(self, count: int, *, stale_s: float = 5 * PING_S, stable_s: float = 10.0):
        if count < 1:
            raise ValueError("count must be >= 1")
        self.slots = [Slot(index=i) for i in range(count)]
        self.stale_s = stale_s
        self.stable_s = stable_s
        self.announced = False  # READY=1 sent (once, for the whole group)

    def spawned(self, index: int, pid: int, now: float) -> None:
        slot = self.slots[index]
        slot.pid, slot.ready, slot.started_at, slot.last_ping = pid, False, now, now

    def ready(self, index: int, now: float) -> bool:
        """A worker listens. True when this makes the whole group ready for the first time."""
        slot = self.slots[index]
        slot.ready, slot.last_ping = True, now
        if not self.announced and self.up() == len(self.slots):
            self.announced = True
            return True
        return False

    def pinged(self, index: int, now: float) -> None:
        self.slots[index].last_ping = now

    def exited(self, index: int, now: float) -> int:
        """A worker ended; returns the backoff attempt to restart it with (0, 1, ...)."""
        slot = self.slots[index]
        stable = slot.ready and now - slot.started_at >= self.stable_s
        slot.failures = 0 if stable else slot.failures + 1
        slot.pid, slot.ready = None, False
        slot.restarts += 1
        return max(0, slot.failures - 1)

    def up(self) -> int:
        return sum(1 for slot in self.slots if slot.pid is not None and slot.ready)

    def healthy(self, now: float) -> bool:
        """Every worker up and heard from within ``stale_s``: the watchdog may be pinged."""
        return all(
            slot.pid is not None and slot.ready and now - slot.last_ping < self.stale_s
            for slot in self.slots
        )

    def stale(self, now: float, start_timeout_s: float) -> list[int]:
        """Pids of workers to kill: up but silent for ``stale_s``, or never ready within
        ``start_timeout_s`` of their spawn."""
        pids = []
        for slot in self.slots:
            if slot.pid is None:
                continue
            silent = slot.ready and now - slot.last_ping >= self.stale_s
            late = not slot.ready and now - slot.started_at >= start_timeout_s
            if silent or late:
                pids.append(slot.pid)
        return pids

    def status(self) -> str:
        return f"{self.up()}/{len(self.slots)} workers up"
