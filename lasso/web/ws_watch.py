"""One task for the timers of every open client WebSocket: idle timeouts and the drain.

Theory of operation. A client WebSocket used to keep two tasks of its own just to wait:
one slept until its idle deadline, one waited for the daemon to start draining. With
10,000 idle subscribers that is 20,000 sleeping tasks (about 2-3 KB each). Here the
sockets of one trio run that share a ``draining`` event register with one watcher:

* a heap of idle deadlines, one entry per socket with ``ws_idle_timeout_ms``. A frame
  only moves the socket's ``last_frame``; when an entry comes due the watcher reads
  the socket's real deadline and pushes the entry back if it moved. A due socket that
  is busy (a frame in flight, a subscription open) gets a whole new period, as before;
  an idle one is closed (1001 "idle timeout");
* the drain: once ``draining`` is set, every registered socket (and every one that
  registers later) is told to drain: it closes (1001) once no frame is in flight.

The watcher runs while at least one socket is registered and ends with the last, so an
idle daemon has no extra task; the next socket starts it again. It is a system task of
the run (``trio.lowlevel.spawn_system_task``): it outlives any one connection, belongs
to no connection's nursery, and never raises (an exception is logged, the watcher
restarts with the next socket).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from math import inf
from typing import Protocol

import trio

log = logging.getLogger("lasso.ws")

#: The longest the watcher sleeps without looking at the heap again (a reload may
#: shorten ``ws_idle_timeout_ms`` for new sockets below the deadline it sleeps towards).
MAX_SLEEP_S = 1.0


class Watched(Protocol):
    last_frame: float
    idle_s: float  # 0: no idle timeout

    def busy(self) -> bool: ...

    def idle_close(self) -> None: ...

    def drain(self) -> None: ...


class SocketWatch:
    """The watcher for the sockets of one run that share one ``draining`` event."""

    def __init__(self, draining: trio.Event | None) -> None:
        self.draining = draining
        self._drained = False
        self._sockets: set[Watched] = set()
        self._heap: list[tuple[float, int, Watched]] = []
        self._order = itertools.count()
        self._running = False

    def add(self, socket: Watched) -> None:
        self._sockets.add(socket)
        if self._drained:
            socket.drain()
        if socket.idle_s:
            self._push(socket.last_frame + socket.idle_s, socket)
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="lasso.ws.watch")

    def discard(self, socket: Watched) -> None:
        self._sockets.discard(socket)  # its heap entry is dropped when it comes due

    def _push(self, deadline: float, socket: Watched) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), socket))

    async def _run(self) -> None:
        try:
            while self._sockets:
                await self._wait()
                self._due(trio.current_time())
        except Exception as exc:  # never the run's end: the next socket restarts us
            log.exception("WebSocket watcher failed: %r", exc)
        finally:
            self._running = False
            if not self._sockets:
                self._heap.clear()

    async def _wait(self) -> None:
        wake_at = min(self._heap[0][0] if self._heap else inf, trio.current_time() + MAX_SLEEP_S)
        if self.draining is None or self._drained:
            await trio.sleep_until(wake_at)
            return
        with trio.move_on_at(wake_at):
            await self.draining.wait()
            self._drained = True
            for socket in list(self._sockets):
                socket.drain()

    def _due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, socket = heapq.heappop(heap)
            if socket not in self._sockets:
                continue
            deadline = socket.last_frame + socket.idle_s
            if deadline > now:
                self._push(deadline, socket)
            elif socket.busy():
                socket.last_frame = now  # a whole new period, as for a frame
                self._push(now + socket.idle_s, socket)
            else:
                self._sockets.discard(socket)
                socket.idle_close()


_WATCHES: trio.lowlevel.RunVar[dict[trio.Event | None, SocketWatch]] = trio.lowlevel.RunVar(
    "lasso_ws_watches"
)


def watch_for(draining: trio.Event | None) -> SocketWatch:
    """The run's watcher for sockets sharing ``draining``."""
    try:
        watches = _WATCHES.get()
    except LookupError:
        watches = {}
        _WATCHES.set(watches)
    watch = watches.get(draining)
    if watch is None:
        watch = watches[draining] = SocketWatch(draining)
    return watch
