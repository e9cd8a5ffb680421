"""Head tracking for one provider: its ``newHeads`` subscription, or HTTP head polls.

:func:`track_heads` runs beside the provider's other services, under the cancel scope
its chain opened for it (:meth:`lasso.chain.ChainRuntime._run_provider`), so removing
the provider stops it. It never ends and never raises for anything the provider does:
a failure is logged, backed off (jittered, capped) and retried.

Theory of operation. Each turn of its loop reads the chain's live config:

    off           ``head_poll_ms = 0``: nothing is tracked; the key is looked at again
                  every second (it is live on reload)
    subscribed    the provider has a WebSocket, ``subscriptions`` is not false and the
                  socket is connected: an upstream ``eth_subscribe(["newHeads"])`` on
                  that shared connection; every pushed head is reported (a reload
                  setting ``subscriptions = false`` unsubscribes and polls). After
                  ``quiet_check_s`` without one, one HTTP head poll (a paused node
                  stays live with its true height). The subscription dies with its
                  link: the tracker notices the connection changed within a tick,
                  forgets the provider's height (a node that dropped its socket may
                  have restarted from genesis: its old height is not known any more,
                  see lasso.emptycheck) and goes back to polling until the socket is
                  up again; the first poll that answers reports the height again
    polling       ``eth_getBlockByNumber(["latest", false])`` over HTTP every
                  :func:`~lasso.core.headpoll.poll_interval_s`; a WebSocket that comes
                  up meanwhile cuts the wait short

Every head goes to :meth:`ChainRuntime.observe_head` (chain state, ``Channel.head``,
``head_changed()`` waiters), but only while this very provider object is still the
chain's: a removed provider draining, or the old object of one a reload replaced,
reports nothing. Head polls are not client traffic: they go straight to the
provider's HTTP transport, never through dispatch, so breakers, rate limits and
latency samples never see them.

:func:`report_heads` is the hook for the subscription hub's shared newHeads streams:
the heads a stream is about to deliver to clients are reported first for the provider
that serves it, so a client that got head N can be routed to a provider known to have N.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import trio

from lasso.core.backoff import Backoff
from lasso.core.headpoll import Head, head_from_block, parse_head, poll_interval_s, quiet_check_s
from lasso.errors import LassoError, UpstreamProtocolError, UpstreamRpcError
from lasso.pubsub import Notification

if TYPE_CHECKING:
    from lasso.chain import ChainRuntime
    from lasso.upstream.provider import Provider
    from lasso.upstream.ws import WsConnection

__all__ = ["HEAD_POLL_PARAMS", "report_heads", "track_heads"]

log = logging.getLogger("lasso.heads")

HEAD_POLL_METHOD = "eth_getBlockByNumber"
HEAD_POLL_PARAMS = b'["latest",false]'
NEW_HEADS_PARAMS = b'["newHeads"]'
#: How often a tracker that is off looks at ``head_poll_ms`` again.
OFF_RECHECK_S = 1.0
#: How often a subscribed tracker checks that its connection is still the same.
TICK_S = 1.0
#: A single head poll, an eth_subscribe or an eth_unsubscribe may take at most this long.
POLL_TIMEOUT_S = 10.0
SUBSCRIBE_TIMEOUT_S = 10.0
UNSUBSCRIBE_TIMEOUT_S = 5.0
FAILURE_BACKOFF = Backoff(base_s=0.5, cap_s=30.0)


async def track_heads(chain: ChainRuntime, provider: Provider, rng: random.Random) -> None:
    """Track ``provider``'s head for ``chain`` until cancelled; see the module docstring."""
    tracker = _Tracker(chain, provider)
    failures = 0
    while True:
        try:
            await tracker.run()
        except Exception as exc:  # never takes the daemon down: logged, backed off, retried
            if isinstance(exc, LassoError | trio.TooSlowError):  # the provider's trouble
                log.debug("%s: head tracking: %s", provider.id, exc)
            else:
                log.warning("%s: head tracking crashed", provider.id, exc_info=True)
            delay_s = FAILURE_BACKOFF.delay(min(failures, 16), rng)
            failures = 0 if tracker.reported else failures + 1
            tracker.reported = False
            await trio.sleep(delay_s)


def report_heads(chain: ChainRuntime, provider_id: str | None, blocks: Iterable[Any]) -> None:
    """Report the heads a shared newHeads stream is about to deliver, for its provider."""
    if provider_id is None or provider_id not in chain.providers:
        return
    now = trio.current_time()
    for block in blocks:
        head = head_from_block(block)
        if head is not None:
            chain.observe_head(provider_id, head.number, head.hash, head.parent_hash, now)


class _Tracker:
    def __init__(self, chain: ChainRuntime, provider: Provider) -> None:
        self.chain = chain
        self.provider = provider
        self.reported = False  # a head was reported since the last failure
        self.refused: str | None = None  # a connection that refused eth_subscribe: poll

    def interval_s(self) -> float | None:
        return poll_interval_s(self.chain.config.head_poll_ms, self.chain.state.block_time_ms)

    def subscribable(self) -> WsConnection | None:
        ws = self.provider.ws
        if ws is None or not self.provider.capabilities.subscriptions or not ws.connected:
            return None
        return None if ws.connection_id == self.refused else ws

    async def run(self) -> None:
        while True:
            if self.interval_s() is None:
                with trio.move_on_after(OFF_RECHECK_S):
                    await self.chain.reconfigured()  # a reload turning it on: at once
                continue
            ws = self.subscribable()
            if ws is not None:
                await self._subscribed(ws)
                continue
            await self.poll()
            interval_s = self.interval_s()  # after the poll: what it measured counts
            if interval_s is not None:
                await self._wait(interval_s)

    async def _wait(self, interval_s: float) -> None:
        """Sleep ``interval_s``, or until a WebSocket to subscribe on comes up, or until
        the chain is reconfigured (a reload's ``head_poll_ms`` applies at once)."""
        ws = self.provider.ws
        async with trio.open_nursery() as nursery:
            nursery.cancel_scope.deadline = trio.current_time() + interval_s

            async def wake_on(event: Callable[[], Awaitable[None]]) -> None:
                await event()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wake_on, self.chain.reconfigured)
            if ws is not None and self.provider.capabilities.subscriptions and not ws.connected:
                nursery.start_soon(wake_on, ws.wait_connected)  # (connected: it refused)

    async def poll(self) -> None:
        """One HTTP head poll, straight on the transport (not client traffic)."""
        with trio.fail_after(POLL_TIMEOUT_S):
            raw, _ = await self.provider.request(HEAD_POLL_METHOD, HEAD_POLL_PARAMS)
        self._report(parse_head(raw))

    def _ours(self) -> bool:
        """This very provider object is still the chain's (not a removed or replaced one)."""
        return self.chain.providers.get(self.provider.id) is self.provider

    def _report(self, head: Head | None) -> None:
        chain, provider = self.chain, self.provider
        if head is None or not self._ours():
            return
        chain.observe_head(
            provider.id, head.number, head.hash, head.parent_hash, trio.current_time()
        )
        self.reported = True

    async def _subscribed(self, ws: WsConnection) -> None:
        """Report the provider's pushed heads until its link is lost or tracking is off."""
        with ws.notifications() as events:  # listening before subscribing: nothing missed
            connection = ws.connection_id
            try:
                with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
                    upstream_id = await ws.subscribe(NEW_HEADS_PARAMS)
            except (UpstreamRpcError, UpstreamProtocolError) as exc:
                log.info("%s: no newHeads over its WebSocket (%s): polling", self.provider.id, exc)
                self.refused = connection
                return
            try:
                await self.poll()  # newHeads pushes only new blocks: learn the height now
                await self._consume(ws, connection, upstream_id, events)
                if ws.connection_id != connection and self._ours():  # the link was lost
                    self.chain.head_lost(self.provider.id)
            finally:
                if ws.connection_id == connection:  # else it died with its link
                    with (
                        trio.CancelScope(shield=True),
                        trio.move_on_after(UNSUBSCRIBE_TIMEOUT_S),
                        contextlib.suppress(LassoError),
                    ):
                        await ws.unsubscribe(upstream_id)

    async def _consume(
        self,
        ws: WsConnection,
        connection: str | None,
        upstream_id: str,
        events: trio.MemoryReceiveChannel[object],
    ) -> None:
        pid = self.provider.id
        last_head = trio.current_time()
        while (
            ws.connection_id == connection
            and self.interval_s() is not None
            and self.provider.capabilities.subscriptions  # live on reload: false means poll
        ):
            event: object = None
            with trio.move_on_after(TICK_S):
                event = await events.receive()
            if (
                isinstance(event, Notification)
                and event.provider_id == pid
                and event.upstream_id == upstream_id
            ):
                self._report(parse_head(event.payload))
                last_head = trio.current_time()
            elif trio.current_time() - last_head >= quiet_check_s(self.chain.state.block_time_ms):
                last_head = trio.current_time()
                await self.poll()
