"""Operator events as log lines: one line per event, on the ``lasso.events`` logger.

:class:`EventLog` listens on the gateway's :class:`~lasso.opsevents.OpsEvents`
and writes each event as one line naming its profile, chain and provider, with
its structured fields for the JSON format (``event`` is the kind)::

    WARNING lasso.events: breaker open: profile=default chain=ethereum provider=alchemy
        transport=http (closed -> open: 3 consecutive failures (last: network))

Levels: a breaker opening, a provider down, an upstream rate limit, a quarantine
and a rejected reload are WARNING (ERROR for the reload); the rest INFO; a
chain-wide recovery probe's breaker moves DEBUG (see ``BreakerChanged``).

Failovers and inbound client limits can come by the thousand a second: each
key (chain and providers; client and limit) gets its first line at once, then
one summary line per window with the count (:class:`~lasso.core.linethrottle.
LineThrottle`); :meth:`EventLog.run` writes the summaries. The events themselves
are all published: metrics count every one.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
import trio

from lasso.core.linethrottle import LineThrottle
from lasso.logsetup import FIELDS
from lasso.opsevents import (
    BreakerChanged,
    ClientLimited,
    Failover,
    OpsEvent,
    ProviderDown,
    ProviderUp,
    Quarantined,
    Reloaded,
    UpstreamRateLimited,
)

__all__ = ["SUMMARY_WINDOW_S", "EventLog", "describe"]

log = logging.getLogger("lasso.events")

#: How often a storm of one kind of event (failovers, client limits) is summed up.
SUMMARY_WINDOW_S: Final = 10.0
_SKIP: Final = frozenset({"at", "wall"})


def _where(event: OpsEvent) -> str:
    parts = [f"profile={event.profile}", f"chain={event.chain}"]
    if event.provider:
        parts.append(f"provider={event.provider}")
    return " ".join(parts)


def describe(event: OpsEvent) -> tuple[int, str]:
    """The level and the text of ``event``'s line."""
    where = _where(event)
    if isinstance(event, BreakerChanged):
        level = logging.WARNING if event.new == "open" else logging.INFO
        if event.recovery_probe:
            level = logging.DEBUG
        text = (
            f"breaker {event.new}: {where} transport={event.transport} "
            f"({event.old} -> {event.new}: {event.reason})"
        )
        return level, text
    if isinstance(event, ProviderDown):
        return logging.WARNING, (
            f"provider down: {where} transport={event.transport}: {event.reason}"
        )
    if isinstance(event, ProviderUp):
        return logging.INFO, f"provider up: {where} transport={event.transport}"
    if isinstance(event, Quarantined):
        return logging.WARNING, (
            f"request quarantined: {where} method={event.method} "
            f"for {event.seconds:g} s: {event.reason}"
        )
    if isinstance(event, Failover):
        return logging.INFO, (
            f"failover: {where} -> {event.to_provider} method={event.method}: {event.reason}"
        )
    if isinstance(event, UpstreamRateLimited):
        after = "" if event.retry_after_ms is None else f" retry_after_ms={event.retry_after_ms}"
        return logging.WARNING, (
            f"upstream rate limited: {where} transport={event.transport}{after}"
        )
    if isinstance(event, ClientLimited):
        return logging.WARNING, f"client limited: {where} client={event.client} limit={event.limit}"
    if isinstance(event, Reloaded):
        level = logging.ERROR if event.result == "rejected" else logging.INFO
        summary = f": {event.summary}" if event.summary else ""
        return level, f"reload {event.result}: generation {event.generation}{summary}"
    return logging.INFO, f"{type(event).__name__}: {where}"


def _fields(event: OpsEvent) -> dict[str, Any]:
    fields = {
        k: v
        for k, v in msgspec.structs.asdict(event).items()
        if k not in _SKIP and v != ""  # a reload names no chain: no empty fields
    }
    fields["event"] = type(event).__struct_config__.tag
    return fields


def _storm_key(event: OpsEvent) -> tuple[str, ...] | None:
    """The key of a kind that can storm (summed up per window); None for the rest."""
    if isinstance(event, Failover):
        return ("failover", event.profile, event.chain, event.provider, event.to_provider)
    if isinstance(event, ClientLimited):
        return ("client_limited", event.profile, event.chain, event.client, event.limit)
    return None


class EventLog:
    """The ``lasso.events`` listener; see the module docstring."""

    def __init__(self, window_s: float = SUMMARY_WINDOW_S) -> None:
        self.throttle: LineThrottle[tuple[str, ...]] = LineThrottle(window_s)
        self._last: dict[tuple[str, ...], OpsEvent] = {}

    def __call__(self, event: OpsEvent) -> None:
        key = _storm_key(event)
        if key is not None:
            self._last[key] = event
            if not self.throttle.offer(key, event.at):
                return
        level, text = describe(event)
        if log.isEnabledFor(level):
            fields = _fields(event)
            if key is not None:
                fields["count"] = 1
            log.log(level, text, extra={FIELDS: fields})

    def flush(self, now: float) -> None:
        """Write the summaries of the windows ended by ``now``."""
        for key, count in self.throttle.due(now):
            if key is None:
                log.warning("%d more failover/client-limit lines suppressed (too many keys)", count)
                continue
            event = self._last.get(key)
            if event is None:
                continue
            level, text = describe(event)
            fields = _fields(event) | {"count": count}
            window = self.throttle.window_s
            log.log(
                level,
                "%s (x%d in the last %g s, the last shown)",
                text,
                count,
                window,
                extra={FIELDS: fields},
            )
        live = set(self.throttle.keys())
        for key in [k for k in self._last if k not in live]:
            del self._last[key]

    async def run(self) -> None:
        """Write the summaries every window, until cancelled."""
        while True:
            await trio.sleep(self.throttle.window_s)
            self.flush(trio.current_time())
