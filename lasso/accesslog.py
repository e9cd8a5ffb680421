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
from typing import Any

import trio

from lasso.callmeta import CallMeta
from lasso.logsetup import FIELDS
from lasso.opsevents import OpsEvents

__all__ = ["AccessLogSwitch", "access_line"]

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


def _observe(meta: CallMeta) -> None:
    if log.isEnabledFor(logging.INFO):
        text, fields = access_line(meta)
        log.info("%s", text, extra={FIELDS: fields, "request_id": meta.request_id})


class AccessLogSwitch:
    """Adds the access-log observer to ``events`` while on, removes it while off."""

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
            _switch_log.info("access log off")
