"""Operator events: one record per thing an operator acts on, fanned out to listeners.

A component that sees a transition (a breaker opening, a provider going down, a
reload, an upstream 429, a failover, a quarantine, an inbound limit) publishes
one :class:`OpsEvent` on the gateway's :class:`OpsEvents`. The listeners are the
logs (one line per event, :mod:`lasso.logs`'s neighbour for operator lines), the
metrics (counters of transitions) and the dashboard (its recent-events panel,
from :attr:`OpsEvents.recent`). Publishing is synchronous and cheap: a deque
append and one call per listener; a listener that raises is logged once and
never reaches the publisher.

Per-request facts are not events: the gateway calls its request observers
(:attr:`OpsEvents.request_observers`) with the finished
:class:`lasso.callmeta.CallMeta` of every call, for metrics and the access log.

Every event names where it happened as ``profile``, ``chain`` and ``provider``
(empty when it does not apply), and carries ``at`` (``trio.current_time()``
seconds, for ordering and rates) and ``wall`` (Unix seconds, for display).
No field may carry a secret: providers are named by their configured id, never
by URL.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import trio

from lasso import redact

if TYPE_CHECKING:
    from lasso.callmeta import CallMeta

__all__ = [
    "BreakerChanged",
    "ClientLimited",
    "Failover",
    "OpsEvent",
    "OpsEvents",
    "ProviderDown",
    "ProviderUp",
    "Quarantined",
    "Reloaded",
    "RequestObserver",
    "UpstreamRateLimited",
    "now_stamps",
]

log = logging.getLogger("lasso.events")

#: How many recent events are kept for the dashboard and ``/api`` readers.
KEEP_RECENT = 512


class OpsEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of every operator event."""

    at: float
    wall: float
    profile: str = ""
    chain: str = ""
    provider: str = ""

    @property
    def routine(self) -> bool:
        """Counted and logged at DEBUG, but not kept in :attr:`OpsEvents.recent`: routine
        moves would push the ones an operator acts on out of the dashboard's window."""
        return False


class BreakerChanged(OpsEvent, frozen=True, kw_only=True, tag="breaker"):
    """A provider channel's circuit breaker moved: ``old`` → ``new`` (closed, half_open, open)."""

    transport: str
    old: str
    new: str
    reason: str = ""
    #: An expedited recovery probe's move (open -> half_open, or back to open with the
    #: same deadline) while the whole chain is down: routine, logged at DEBUG.
    recovery_probe: bool = False

    @property
    def routine(self) -> bool:
        return self.recovery_probe


class ProviderUp(OpsEvent, frozen=True, kw_only=True, tag="provider_up"):
    """A provider channel became usable (WS connected, HTTP answering again)."""

    transport: str


class ProviderDown(OpsEvent, frozen=True, kw_only=True, tag="provider_down"):
    """A provider channel stopped being usable (WS lost, HTTP failing)."""

    transport: str
    reason: str = ""


class Quarantined(OpsEvent, frozen=True, kw_only=True, tag="quarantine"):
    """A request shape is refused for a while (``lasso.core.poison``)."""

    method: str
    seconds: float
    reason: str = ""


class Failover(OpsEvent, frozen=True, kw_only=True, tag="failover"):
    """A call failed on ``provider`` and was served by ``to_provider`` instead."""

    method: str
    to_provider: str
    reason: str = ""


class UpstreamRateLimited(OpsEvent, frozen=True, kw_only=True, tag="upstream_rate_limited"):
    """A provider answered 429 (or a rate-limit error); ``retry_after_ms`` if it said."""

    transport: str
    retry_after_ms: int | None = None


class ClientLimited(OpsEvent, frozen=True, kw_only=True, tag="client_limited"):
    """An inbound client key went over its limit (``limit``: rate, connections, ws)."""

    client: str
    limit: str


class Reloaded(OpsEvent, frozen=True, kw_only=True, tag="reload"):
    """A SIGHUP reload finished: ``result`` is applied, rejected or unchanged."""

    generation: int
    result: str
    summary: str = ""


#: Free-text fields, scrubbed of secrets on publish (:mod:`lasso.redact`).
_TEXT_FIELDS = ("reason", "summary")


def _scrubbed(event: OpsEvent) -> OpsEvent:
    changes = {}
    for name in _TEXT_FIELDS:
        text = getattr(event, name, "")
        if text and (clean := redact.scrub(text)) != text:
            changes[name] = clean
    return msgspec.structs.replace(event, **changes) if changes else event


RequestObserver = Callable[["CallMeta"], None]
Listener = Callable[[OpsEvent], None]


def now_stamps() -> dict[str, float]:
    """``at`` and ``wall`` for an event made now (inside trio)."""
    return {"at": trio.current_time(), "wall": time.time()}


class OpsEvents:
    """The gateway's operator-event fan-out and its request observers."""

    def __init__(self, keep: int = KEEP_RECENT) -> None:
        self.recent: deque[OpsEvent] = deque(maxlen=keep)
        self._listeners: list[Listener] = []
        #: Called with every finished call's CallMeta (metrics, access log). Keep them cheap.
        self.request_observers: list[RequestObserver] = []
        self._failed: set[int] = set()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event published from now; returns the undo."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, event: OpsEvent) -> None:
        event = _scrubbed(event)  # a reason may quote an upstream error: no secret in it
        if not event.routine:
            self.recent.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:  # a listener's bug never reaches the publisher
                if id(listener) not in self._failed:
                    self._failed.add(id(listener))
                    log.error("event listener %r failed: %r", listener, exc)

    def observe(self, meta: CallMeta) -> None:
        """The gateway's hook: one finished call."""
        for observer in self.request_observers:
            try:
                observer(meta)
            except Exception as exc:
                if id(observer) not in self._failed:
                    self._failed.add(id(observer))
                    log.error("request observer %r failed: %r", observer, exc)
