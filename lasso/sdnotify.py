"""systemd's notify protocol (sd_notify(3)) for the daemon: the thin I/O shell.

Under ``Type=notify`` (``deploy/lasso.service``) systemd sets ``$NOTIFY_SOCKET`` and,
with ``WatchdogSec=``, ``$WATCHDOG_USEC``. Without ``$NOTIFY_SOCKET`` every call here
does nothing. What the daemon says, and when (``lasso.daemon.serve``)::

    READY=1 + STATUS=        the front end listens and the providers have started
    WATCHDOG=1               every WATCHDOG_USEC/2, from a task on the event loop: a
                             loop wedged by a blocking call sends none, and systemd
                             restarts the service once WatchdogSec passes
    STATUS=serving: ...      every STATUS_EVERY_S: provider channels up, requests/s
    RELOADING=1 +            a SIGHUP reload starts (lasso.reload.serve_reloads)
      MONOTONIC_USEC=
    READY=1 + STATUS=        ... and ended (applied, unchanged or rejected alike)
    STOPPING=1               a stop signal: the drain begins (pings go on meanwhile)

A datagram goes out with one non-blocking ``sendto`` on an ``AF_UNIX``/``SOCK_DGRAM``
socket. Sending never raises into the daemon: a failure is logged once per failing
streak and the gateway serves on (systemd would then act on its own timeouts).
The decisions (addresses, the watchdog period, the rate, the text) are in
:mod:`lasso.core.sdnotify`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING

import trio

from lasso.core.sdnotify import (
    RequestRate,
    encode,
    notify_address,
    status_text,
    watchdog_period_s,
)

if TYPE_CHECKING:
    from lasso.callmeta import CallMeta
    from lasso.gateway import Gateway

__all__ = ["STATUS_EVERY_S", "GatewayStatus", "ReadyWhenStarted", "SdNotify", "run_notify"]

log = logging.getLogger("lasso.sdnotify")

#: Seconds between ``STATUS=`` lines; the requests per second are over this interval.
STATUS_EVERY_S = 5.0

#: The variables systemd sets for the main process only.
NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class SdNotify:
    """A notifier for one ``$NOTIFY_SOCKET`` address (None: every call does nothing)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        watchdog_s: float | None = None,
        status_every_s: float = STATUS_EVERY_S,
    ) -> None:
        self.address = address
        #: Seconds between ``WATCHDOG=1`` pings, or None (no watchdog, or no socket).
        self.watchdog_s = watchdog_s if address is not None else None
        #: Seconds between ``STATUS=`` lines (and the requests-per-second interval).
        self.status_every_s = status_every_s
        self._sock: socket.socket | None = None
        self._failing = False
        self._stopping = False

    @classmethod
    def take_from_environ(cls, environ: MutableMapping[str, str] | None = None) -> SdNotify:
        """The notifier ``environ`` (``os.environ``) describes, and the variables removed
        from it, so no child process (``lasso up``'s anvil nodes) takes them for its own."""
        env = os.environ if environ is None else environ
        notify = cls(
            notify_address(env.get("NOTIFY_SOCKET")),
            watchdog_s=watchdog_period_s(env, os.getpid()),
        )
        for name in NOTIFY_VARIABLES:
            env.pop(name, None)
        return notify

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: tuple[str, str]) -> bool:
        """Send one datagram of ``KEY=value`` lines; False if it could not go (or no socket)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(encode(*fields), self.address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
            return False
        if self._failing:
            self._failing = False
            log.info("notifying systemd at %r again", self.address)
        return True

    # Once STOPPING=1 is out, the service is on its way down: a READY=1 (a front end that
    # came up, or a reload that ended, after the stop signal) would say otherwise.

    def ready(self, status: str | None = None) -> bool:
        if self._stopping:
            return False
        return self.send(("READY", "1"), *_status(status))

    def reloading(self, status: str | None = None) -> bool:
        if self._stopping:
            return False
        # MONOTONIC_USEC: systemd 253+ (Type=notify-reload) wants to know when the reload
        # began on CLOCK_MONOTONIC; older versions ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(("RELOADING", "1"), ("MONOTONIC_USEC", str(usec)), *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        self._stopping = True
        return self.send(("STOPPING", "1"), *_status(status))

    def watchdog(self) -> bool:
        return self.send(("WATCHDOG", "1"))

    def status(self, text: str) -> bool:
        return self.send(("STATUS", text))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SdNotify:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _status(text: str | None) -> tuple[tuple[str, str], ...]:
    return () if text is None else (("STATUS", text),)


class GatewayStatus:
    """The ``STATUS=`` line for a gateway: its provider channels up, counted from their
    ``statistics()``, and the calls that finished per second (counted, inside its
    ``with`` block, by a request observer on ``gateway.events``)."""

    def __init__(self, gateway: Gateway, now: float) -> None:
        self._gateway = gateway
        self.rate = RequestRate(now)
        self._observer: Callable[[CallMeta], None] = lambda _meta: self.rate.add()

    def __enter__(self) -> GatewayStatus:
        self._gateway.events.request_observers.append(self._observer)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._gateway.events.request_observers.remove(self._observer)

    def channels_up(self, now: float) -> tuple[int, int]:
        """Provider channels (HTTP, WebSocket) whose breaker is closed, of all of them; a
        WebSocket counts only while connected (its breaker stays closed while it is down)."""
        up = total = 0
        for _slug, chain in self._gateway.chains():
            for provider in chain.statistics(now).providers:
                total += 1
                up += provider.http.circuit == "closed"
                if provider.ws is not None:
                    total += 1
                    up += provider.ws.circuit == "closed" and bool(provider.ws_connected)
        return up, total

    def line(self, now: float) -> str | None:
        """The status now (the rate covers the time since the previous line), or None if
        it cannot be had: a bug in a component's statistics is logged, never raised into
        the daemon through its notifier."""
        try:
            up, total = self.channels_up(now)
        except Exception:
            log.exception("no status line for systemd")
            return None
        return status_text(up, total, self.rate.per_second(now))


async def run_notify(notify: SdNotify, status: GatewayStatus, shutdown: trio.Event) -> None:
    """The daemon's side of the protocol while it runs (until cancelled): watchdog pings,
    a status line every ``notify.status_every_s``, and ``STOPPING=1`` once ``shutdown`` is
    set. The pings go on through the drain; the status lines stop."""
    if not notify.enabled:
        return
    with status:
        async with trio.open_nursery() as nursery:
            if notify.watchdog_s is not None:
                nursery.start_soon(_watchdog_pings, notify, notify.watchdog_s)
            async with trio.open_nursery() as updates:
                updates.start_soon(_status_updates, notify, status, notify.status_every_s)
                await shutdown.wait()
                updates.cancel_scope.cancel(reason="stopping")
            notify.stopping("stopping: draining in-flight requests")


async def _watchdog_pings(notify: SdNotify, period_s: float) -> None:
    # A task on the event loop, never a thread: if the loop is wedged, no ping goes out.
    while True:
        notify.watchdog()
        await trio.sleep(period_s)


async def _status_updates(notify: SdNotify, status: GatewayStatus, every_s: float) -> None:
    while True:
        await trio.sleep(every_s)
        line = status.line(trio.current_time())
        if line is not None:
            notify.status(line)


class ReadyWhenStarted:
    """A ``task_status`` that passes the front end's bound URLs on, then says READY=1:
    the listener is bound and the providers (started before the front end) run. Not if
    ``shutdown`` is already set (a stop signal during start-up): STOPPING=1 follows."""

    def __init__(
        self,
        inner: trio.TaskStatus[list[str]],
        notify: SdNotify,
        status: GatewayStatus,
        shutdown: trio.Event,
    ) -> None:
        self._inner = inner
        self._notify = notify
        self._status = status
        self._shutdown = shutdown

    def started(self, value: list[str] | None = None) -> None:
        self._inner.started(value if value is not None else [])
        if self._notify.enabled and not self._shutdown.is_set():
            self._notify.ready(self._status.line(trio.current_time()))  # None: READY=1 alone
