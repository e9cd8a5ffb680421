"""Upstream ``eth_subscribe`` and ``eth_unsubscribe`` made on a stream's behalf.

Theory of operation. A stream waits at most ``SUBSCRIBE_TIMEOUT_S`` for an
upstream to confirm a subscription, and its client may leave sooner. But a
cancelled :meth:`~lasso.upstream.ws.WsConnection.subscribe` drops its reply
(the link counts it as unmatched), so an upstream that confirms after the
stream gave up would keep a subscription nobody knows the id of. So the call
itself runs in the hub's nursery (``spawn``), as an :class:`_Attempt` the
stream waits on:

    answered in time     the stream gets the upstream id
    answered late        (within LATE_CONFIRM_S) the id is unsubscribed at once
    answered as the      (in the very tick) the id is unsubscribed on the
    stream gives up      stream's way out
    never answered       the attempt ends after LATE_CONFIRM_S; a link that
                         dies fails it at once

Unsubscribing is best effort and bounded: an upstream subscription also dies
with its connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import trio

from lasso.errors import LassoError, UpstreamProtocolError
from lasso.upstream.ws import WsConnection

log = logging.getLogger("lasso.subscriptions")

SUBSCRIBE_TIMEOUT_S = 10.0
LATE_CONFIRM_S = 120.0  # how long an abandoned eth_subscribe still waits for its answer
UNSUBSCRIBE_TIMEOUT_S = 5.0

Spawn = Callable[..., object]


async def subscribe_upstream(ws: WsConnection, params: bytes, spawn: Spawn | None) -> str:
    """``eth_subscribe`` on ``ws`` within SUBSCRIBE_TIMEOUT_S; the upstream's id.

    With ``spawn`` (the hub nursery's ``start_soon``) the call runs there: if the
    caller gives up on it (the timeout, or its client left) and the upstream
    confirms it later anyway, the upstream subscription is unsubscribed then
    instead of leaking.
    """
    if spawn is None:
        with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
            return await ws.subscribe(params)
    attempt = _Attempt()
    spawn(_subscribe_detached, ws, params, attempt)
    try:
        with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
            await attempt.done.wait()
    except BaseException:
        attempt.abandoned = True
        if attempt.upstream_id is not None:  # confirmed just as the caller gave up
            spawn(_unsubscribe_late, ws, attempt.upstream_id)
        raise
    if attempt.error is not None:
        raise attempt.error
    if attempt.upstream_id is None:
        raise UpstreamProtocolError("eth_subscribe was not answered")
    return attempt.upstream_id


async def unsubscribe_quietly(ws: WsConnection, upstream_id: str) -> None:
    """``eth_unsubscribe``, bounded; a failure is ignored (it dies with its link)."""
    with trio.move_on_after(UNSUBSCRIBE_TIMEOUT_S), contextlib.suppress(LassoError):
        await ws.unsubscribe(upstream_id)


class _Attempt:
    """One upstream ``eth_subscribe`` made on a stream's behalf."""

    __slots__ = ("abandoned", "done", "error", "upstream_id")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.upstream_id: str | None = None
        self.error: BaseException | None = None
        self.abandoned = False  # the stream stopped waiting: a late id is unsubscribed


async def _subscribe_detached(ws: WsConnection, params: bytes, attempt: _Attempt) -> None:
    """The upstream ``eth_subscribe`` of ``attempt``; an id nobody waits for any more is
    unsubscribed. Bounded by LATE_CONFIRM_S (a link that dies fails it at once)."""
    try:
        with trio.move_on_after(LATE_CONFIRM_S):
            upstream_id = await ws.subscribe(params)
            if attempt.abandoned:
                await _unsubscribe_late(ws, upstream_id)
            else:
                attempt.upstream_id = upstream_id
    except Exception as exc:  # handed to the stream: never crash the hub's nursery
        attempt.error = exc
    finally:
        attempt.done.set()


async def _unsubscribe_late(ws: WsConnection, upstream_id: str) -> None:
    log.info("unsubscribing %s: its eth_subscribe was confirmed too late", upstream_id)
    await unsubscribe_quietly(ws, upstream_id)
