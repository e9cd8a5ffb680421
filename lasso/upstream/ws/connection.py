"""One upstream WebSocket connection per provider: the service and its public surface.

:meth:`WsConnection.run` is the provider's WebSocket service (run it under a
:class:`~lasso.upstream.supervisor.Supervisor`; it neither returns nor raises
for anything a connection does). Each turn of its loop is one session:

1. dial, bounded by ``connect_timeout_s`` (a cancel scope); failure publishes
   ``WsError`` on ``ws:conn:<chain>``;
2. publish ``WsConnected`` and serve a :class:`~lasso.upstream.ws.link.Link`
   (reader, writer, heartbeat) plus a stability timer in the session nursery;
   after ``stable_after_s`` up, ``WsStable``;
3. whatever ends the link first (peer close, TCP drop, no pong, a crash in
   trio-websocket or here) fails every pending request at once with
   ``UpstreamNetworkError`` and publishes ``WsClosed`` or ``WsDisconnected``;
4. publish ``WsReconnecting(attempt, delay_s)``, sleep a jittered exponential
   backoff (attempt 1 again after a stable link), and go round.

A link that came up and was lost before it became stable is a *flap*: it is
reported to ``on_flap`` (the provider passes it to its WebSocket supervisor's
restart tracker), so a connection that keeps flapping is quarantined from
routing like a service that keeps crashing, although ``run`` itself never
crashes. A dial that fails is not a flap: there was no link to route to.

Exceptions are caught at this edge only as ``Exception`` (``except*`` for the
nursery's groups), so cancellation always propagates; on shutdown the
transport is closed without a close handshake.

Requests use private integer ids and replies go through
:func:`lasso.core.reply.interpret`, so errors are classified exactly as over
HTTP. There are no timeout parameters: the caller's cancel scope bounds a
request, and a cancelled request leaves no pending entry.

**Subscriptions die with their link.** Nothing here re-subscribes: the
subscription hub watches ``ws:conn:<chain>`` and does that. A
``SubscriptionConfirmed`` is published as the reply is read, before any
notification for the new id, but only while the caller of
:meth:`WsConnection.subscribe` still waits for it: a cancelled call's waiter is
dropped, so a reply that comes later finds no one (it is counted in
``unmatched_frames``), nothing is published, and the upstream subscription it
confirms stays open. A caller that may give up must keep the call running where
it can still take the answer: :mod:`lasso.subscriptions.subscribing` runs a stream's
``eth_subscribe`` in the hub's nursery and unsubscribes a late confirmation itself.
"""

from __future__ import annotations

import enum
import itertools
import logging
import random
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager as ContextManager
from typing import TypeVar

import msgspec
import trio
from trio import MemoryReceiveChannel
from trio_websocket import ConnectionRejected

from lasso import redact
from lasso.config.secrets import with_url_credentials
from lasso.core.backoff import Backoff
from lasso.core.jsonrpc import encode_json
from lasso.errors import UpstreamNetworkError, UpstreamProtocolError
from lasso.pubsub import (
    EventBus,
    WsConnected,
    WsDisconnected,
    WsError,
    WsReconnecting,
    WsStable,
    conn_topic,
    subs_topic,
)
from lasso.upstream.ws.dial import Connector, close_quietly, dial
from lasso.upstream.ws.link import Ending, Link, Tally, decode_str, describe_ending
from lasso.upstream.ws.state import WsState, check_transition

__all__ = ["WsConnection", "WsPolicy", "WsStatistics"]

log = logging.getLogger("lasso.ws")

_connection_numbers = itertools.count(1)
_decode_bool = msgspec.json.Decoder(bool).decode
T = TypeVar("T")


class WsPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0
    reconnect_multiplier: float = 2.0
    reconnect_jitter: float = 0.2
    ping_interval_s: float = 15.0
    pong_timeout_s: float = 5.0
    max_pending: int = 256
    stable_after_s: float = 5.0
    connect_timeout_s: float = 10.0
    max_message_bytes: int = 16 * 2**20

    def __post_init__(self) -> None:
        for name in ("ping_interval_s", "pong_timeout_s", "connect_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.stable_after_s < 0:
            raise ValueError("stable_after_s must be >= 0")
        if self.max_pending < 1 or self.max_message_bytes < 1:
            raise ValueError("max_pending and max_message_bytes must be >= 1")
        self.backoff()  # validates the reconnect_* fields

    def backoff(self) -> Backoff:
        return Backoff(
            base_s=self.reconnect_base_s,
            cap_s=self.reconnect_cap_s,
            multiplier=self.reconnect_multiplier,
            jitter=self.reconnect_jitter,
        )


class WsStatistics(msgspec.Struct, frozen=True):
    provider_id: str
    state: str
    connection_id: str | None
    connects: int
    reconnects: int
    pending: int
    requests: int
    notifications: int
    unmatched_frames: int
    subscriptions: int
    last_error: str | None


class _ConnectFailed(Exception):
    pass


class _Ended(enum.Enum):
    """How one session ended."""

    NEVER_UP = "never_up"  # the dial or handshake failed
    FLAPPED = "flapped"  # up, then lost before it became stable
    STABLE = "stable"  # up long enough to count as stable, then lost


class WsConnection:
    """The WebSocket side of one provider. See the module docstring."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        provider_id: str,
        chain: str,
        bus: EventBus,
        policy: WsPolicy,
        rng: random.Random,
        connect: Connector | None = None,
    ) -> None:
        self.url = url
        self.provider_id = provider_id
        self.policy = policy
        # Userinfo in the URL goes in the handshake as Basic auth, unless overridden.
        headers = with_url_credentials(url, headers)
        self._headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self._bus = bus
        self._rng = rng
        self._connect = connect or dial
        self._backoff = policy.backoff()
        self._topics = (conn_topic(chain), subs_topic(chain))
        self._state = WsState.IDLE
        self._link: Link | None = None
        self._up = trio.Event()
        self._tally = Tally()
        self._connects = self._reconnects = 0
        self._last_error: str | None = None
        #: Told, with the reason, each time a link is lost before it became stable.
        self.on_flap: Callable[[str], None] | None = None
        #: Told ``(up, reason)`` once per change: a link came up, or was lost (or the
        #: first dial failed); a provider that stays down is told nothing more.
        self.on_link: Callable[[bool, str], None] | None = None
        self._reported_up: bool | None = None

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def connection_id(self) -> str | None:
        return None if self._link is None else self._link.connection_id

    @property
    def state(self) -> WsState:
        return self._state

    async def wait_connected(self) -> None:
        while self._link is None:
            await self._up.wait()

    # --- requests ---------------------------------------------------------------

    async def request(self, method: str, params: bytes) -> tuple[bytes, int]:
        """Send one call; return the raw result bytes and the latency in µs."""
        return await self._live().call(method, params, None)

    async def subscribe(self, params: bytes) -> str:
        """``eth_subscribe`` with ``params`` (a JSON array); return the upstream's id."""
        result, _ = await self._live().call("eth_subscribe", params, params)
        return self._typed(decode_str, result, "eth_subscribe", "a subscription id")

    async def unsubscribe(self, upstream_id: str) -> bool:
        """``eth_unsubscribe``; the upstream's true or false."""
        link = self._live()
        result, _ = await link.call("eth_unsubscribe", encode_json([upstream_id]), None)
        link.subscriptions.discard(upstream_id)
        return self._typed(_decode_bool, result, "eth_unsubscribe", "a boolean")

    def notifications(self, max_buffer: int = 1024) -> ContextManager[MemoryReceiveChannel[object]]:
        """Receive this chain's subscription events (every provider's: filter by
        ``provider_id``) until the block exits; see :mod:`lasso.pubsub`."""
        return self._bus.subscribe(self._topics[1], max_buffer=max_buffer)

    def _typed(self, decode: Callable[[bytes], T], result: bytes, method: str, what: str) -> T:
        try:
            return decode(result)
        except msgspec.DecodeError:
            raise UpstreamProtocolError(
                f"{method} answered {result[:80]!r}, not {what}", provider_id=self.provider_id
            ) from None

    def _live(self) -> Link:
        if self._link is None:
            raise UpstreamNetworkError(
                f"WebSocket to {self.provider_id} is not connected",
                provider_id=self.provider_id,
                never_sent=True,
            )
        return self._link

    def statistics(self) -> WsStatistics:
        link = self._link
        return WsStatistics(
            provider_id=self.provider_id,
            state=self._state.value,
            connection_id=None if link is None else link.connection_id,
            connects=self._connects,
            reconnects=self._reconnects,
            pending=0 if link is None else len(link.pending),
            requests=self._tally.requests,
            notifications=self._tally.notifications,
            unmatched_frames=self._tally.unmatched,
            subscriptions=0 if link is None else len(link.subscriptions),
            last_error=self._last_error,
        )

    # --- the service --------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, reconnect with backoff; forever, until cancelled."""
        self._set_state(WsState.CONNECTING)
        task_status.started()
        attempt = 0
        try:
            while True:
                ended = await self._session()
                if ended is _Ended.FLAPPED and self.on_flap is not None:
                    self.on_flap(self._last_error or "lost before it became stable")
                attempt = 1 if ended is _Ended.STABLE else attempt + 1
                self._set_state(WsState.BACKOFF)
                delay_s = self._backoff.delay(attempt - 1, self._rng)
                self._reconnects += 1
                self._publish(WsReconnecting(self.provider_id, attempt, delay_s))
                await trio.sleep(delay_s)
                self._set_state(WsState.CONNECTING)
        finally:
            self._set_state(WsState.STOPPED)

    async def _session(self) -> _Ended:
        """One link from dial to loss."""
        link: Link | None = None
        failure = "connection stopped"
        try:
            async with trio.open_nursery() as nursery:
                link = await self._open_link(nursery)
                link.start(nursery, self.policy.ping_interval_s, self.policy.pong_timeout_s)
                nursery.start_soon(self._stabilise, link)
        except* Exception as group:
            failure = _describe(group)
            if link is not None:
                log.error("WebSocket to %s crashed: %s", self.provider_id, failure, exc_info=group)
        finally:
            if link is not None:
                link.end(WsDisconnected(self.provider_id, failure))
                await close_quietly(link.stream)
        if link is None:
            # The same failure again (a provider that stays down) is not news.
            level = logging.DEBUG if failure == self._last_error else logging.WARNING
            log.log(level, "WebSocket to %s: %s", self.provider_id, failure)
            self._last_error = failure
            self._publish(WsError(self.provider_id, failure))
            self._report(up=False, reason=failure)
            return _Ended.NEVER_UP
        self._report(up=False, reason=self._last_error or failure)
        return _Ended.STABLE if self._state is WsState.STABLE else _Ended.FLAPPED

    def _report(self, *, up: bool, reason: str) -> None:
        if self._reported_up is not up:
            self._reported_up = up
            if self.on_link is not None:
                self.on_link(up, reason)

    async def _open_link(self, nursery: trio.Nursery) -> Link:
        timeout_s = self.policy.connect_timeout_s
        try:
            with trio.fail_after(timeout_s):
                dialed = await self._connect(
                    nursery, self.url, self._headers, self.policy.max_message_bytes
                )
        except trio.TooSlowError:
            raise _ConnectFailed(f"connect timed out after {timeout_s:g} s") from None
        link = Link(
            dialed,
            connection_id=f"{self.provider_id}#{next(_connection_numbers)}",
            provider_id=self.provider_id,
            max_pending=self.policy.max_pending,
            bus=self._bus,
            topics=self._topics,
            scope=nursery.cancel_scope,
            tally=self._tally,
            on_end=self._link_ended,
        )
        self._link = link
        self._connects += 1
        self._set_state(WsState.CONNECTED)
        self._up.set()
        self._publish(WsConnected(self.provider_id, link.connection_id))
        self._report(up=True, reason="")
        return link

    def _link_ended(self, link: Link, event: Ending) -> None:
        if self._link is link:
            self._link = None
            self._up = trio.Event()
        self._last_error = describe_ending(event)

    async def _stabilise(self, link: Link) -> None:
        await trio.sleep(self.policy.stable_after_s)
        self._set_state(WsState.STABLE)
        self._publish(WsStable(self.provider_id))

    def _publish(self, event: object) -> None:
        self._bus.publish(self._topics[0], event)

    def _set_state(self, new: WsState) -> None:
        self._state = check_transition(self._state, new)


def _describe(group: BaseExceptionGroup[Exception]) -> str:
    """One line for what ended a link or a connect attempt."""
    texts = []
    for exc in _leaves(group):
        if isinstance(exc, _ConnectFailed):
            texts.append(str(exc))
        elif isinstance(exc, ConnectionRejected):
            texts.append(f"handshake rejected: HTTP {exc.status_code}")
        elif isinstance(exc, OSError):
            texts.append(f"connect failed: {exc}")
        else:
            texts.append(f"{type(exc).__name__}: {exc}")
    return redact.scrub("; ".join(texts))  # an exception may quote the URL


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    found: list[Exception] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(_leaves(exc))
        else:
            found.append(exc)
    return found
