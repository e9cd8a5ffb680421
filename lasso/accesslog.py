"""The per-call access log (``[logging] access_log = true``), on the ``lasso.access`` logger.

One line per JSON-RPC call, written when the call finishes: a batch of ten is
ten lines sharing the request id (batch items can go to different providers and
end differently, and one line per HTTP request would have to drop that)::

    INFO lasso.access [3f9a1c-1b]: http default/ethereum eth_call ok provider=alchemy/http
        upstream_ms=12.3 total_ms=13.1 attempts=0

Fields (also in the JSON format): ``transport`` (the client's: http or ws),
``profile``, ``chain``, ``method``, ``result`` (``ok``, ``node_error`` (the node's
own error, passed through), ``error`` (Lasso's) or ``internal``), ``code`` (the
JSON-RPC error code, for errors), ``provider`` and ``upstream_transport`` (who
answered, if anyone), ``upstream_ms``, ``total_ms`` (end to end, as the gateway
saw it), ``attempts`` (failed or skipped attempts before the answer),
``request_id``. Answers refused before any call is parsed (a bad body, an
unknown chain, a body too large) have no call and no line here; their HTTP status
is in the response only.

It is a request observer (:attr:`lasso.opsevents.OpsEvents.request_observers`),
added only while turned on (:class:`AccessLogSwitch`): off, it costs nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from lasso import logsetup
from lasso.callmeta import CallMeta
from lasso.logsetup import FIELDS
from lasso.opsevents import OpsEvents

__all__ = ["AccessLogSwitch", "access_line", "flush"]

log = logging.getLogger("lasso.access")
_switch_log = logging.getLogger("lasso.logging")


def access_line(meta: CallMeta) -> tuple[str, dict[str, Any]]:
    """The text and the fields of ``meta``'s line."""
    ended = meta.ended if meta.ended is not None else trio.current_time()
    total_ms = round((ended - meta.started) * 1000, 3)
    outcome = meta.outcome
    method = meta.method[:128]  # a client's string: bounded here, escaped by the formatter
    fields: dict[str, Any] = {
        "transport": meta.transport,
        "profile": meta.profile,
        "chain": meta.chain,
        "method": method,
        "result": meta.result,
        "code": meta.code,
        "total_ms": total_ms,
    }
    text = f"{meta.transport} {meta.profile}/{meta.chain} {method} {meta.result}"
    if meta.code is not None:
        text += f" code={meta.code}"
    if outcome is not None:
        fields["attempts"] = len(outcome.attempts)
        if outcome.provider is not None:
            upstream_ms = round((outcome.upstream_latency_us or 0) / 1000, 3)
            fields |= {
                "provider": outcome.provider,
                "upstream_transport": outcome.transport,
                "upstream_ms": upstream_ms,
            }
            text += f" provider={outcome.provider}/{outcome.transport} upstream_ms={upstream_ms}"
    text += f" total_ms={total_ms}"
    if outcome is not None:
        text += f" attempts={len(outcome.attempts)}"
    return text, fields


#: Lines kept for the next write: ``(created, request id, message, fields)``.
_pending: list[tuple[float, str | None, str, dict[str, Any]]] = []
#: Written at once when this many lines wait, else by the flusher (at most FLUSH_S late).
FLUSH_LINES = 256
FLUSH_S = 0.25


def _observe(meta: CallMeta) -> None:
    if log.isEnabledFor(logging.INFO):
        text, fields = access_line(meta)
        _pending.append((time.time(), meta.request_id, text, fields))
        if len(_pending) >= FLUSH_LINES:
            flush()


def flush() -> None:
    """Write the lines kept so far: through Lasso's handler in one write
    (``lasso.logsetup.write_lines``); any other handler the lines reach (an embedding
    program's, pytest's) gets one record per line, as logging would give it."""
    if not _pending:
        return
    lines = _pending[:]
    _pending.clear()
    ours = logsetup.installed()
    written = logsetup.write_lines(log.name, logging.INFO, lines)  # False without ours
    others = [h for h in _handlers(log) if not (written and h is ours)]
    if not others:
        return
    for created, rid, text, fields in lines:
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, "%s", (text,), None)
        record.created = created
        record.msecs = int((created - int(created)) * 1000) + 0.0
        record.__dict__[FIELDS] = fields
        record.request_id = rid
        for handler in others:
            if record.levelno >= handler.level:
                handler.handle(record)


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``logger`` reaches (``logging.Logger.callHandlers``)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found


class AccessLogSwitch:
    """Adds the access-log observer to ``events`` while on, removes it while off.

    Lines are written in batches: at most ``FLUSH_S`` after their call ended (by
    :meth:`run`, the daemon's flusher), or at once when ``FLUSH_LINES`` wait, and when
    the log is switched off or the daemon stops. One ``write`` per batch instead of one
    per call: measured in ``make bench`` (section ``obscost``)."""

    def __init__(self, events: OpsEvents) -> None:
        self._events = events

    @property
    def on(self) -> bool:
        return _observe in self._events.request_observers

    def set(self, on: bool) -> None:
        if on and not self.on:
            self._events.request_observers.append(_observe)
            _switch_log.info("access log on")
        elif not on and self.on:
            self._events.request_observers.remove(_observe)
            flush()
            _switch_log.info("access log off")

    async def run(self) -> None:
        """Write what waits every ``FLUSH_S``; the rest when cancelled (the daemon stops)."""
        try:
            while True:
                await trio.sleep(FLUSH_S)
                flush()
        finally:
            flush()
