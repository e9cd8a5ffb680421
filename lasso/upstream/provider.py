"""One upstream provider: its transports, its two channels and its supervised services.

``request(method, params, transport)`` is the only I/O the dispatcher calls: it
sends one attempt over one transport and returns ``(raw_result, latency_us)`` or
raises a classified :mod:`lasso.errors` upstream error. Whether to retry, and
where, is the dispatcher's business; what the attempt means for the provider's
health it reports to the attempt's :class:`~lasso.core.channel.Channel`.

A provider owns one channel per transport (HTTP always, WS when configured),
each with its breaker, rate limit, quarantine and latency handle; and the
supervisors of its services, created here: :meth:`start` starts them in the
nursery its owner gives it (the chain's, or the daemon's), and cancelling that
nursery's scope stops them. Nothing outside holds a part of it: routing, dispatch,
subscriptions, health and metrics ask the provider or its channels.

``run()`` is the provider's long-lived HTTP-side service (see
:mod:`lasso.upstream.probe`): it probes half-open breakers and reaps idle
connections; the WebSocket's service is :meth:`WsConnection.run`.
"""

from __future__ import annotations

import itertools
import random
import time

import msgspec
import trio

from lasso import redact
from lasso.config import CircuitBreakerConfig, ProviderConfig, mask_url
from lasso.config.secrets import with_url_credentials
from lasso.core.backoff import Backoff, RestartTracker
from lasso.core.breaker import BreakerPolicy, CircuitBreaker
from lasso.core.capabilities import CapabilityBook, CapabilityStatistics
from lasso.core.channel import Channel, ChannelStatistics
from lasso.core.jsonrpc import encode_upstream
from lasso.core.latency import LatencyBook
from lasso.core.methods import is_replay_safe
from lasso.core.reply import interpret
from lasso.errors import LocalCapacity, UpstreamNetworkError
from lasso.upstream import probe
from lasso.upstream.http import HttpStatistics, HttpTransport, PostTransport
from lasso.upstream.http_httpcore import HttpcoreTransport
from lasso.upstream.recovery import RecoveryWatch
from lasso.upstream.supervisor import Service, Supervisor, SupervisorStatistics
from lasso.upstream.ws import WsConnection, WsStatistics

HTTP = "http"
WS = "ws"
RESTART_BACKOFF = Backoff(base_s=0.5, cap_s=30.0)
#: More than this many restarts of a service inside the window quarantines its channel.
MAX_RESTARTS, RESTART_WINDOW_S = 5, 60.0


def breaker_policy(config: CircuitBreakerConfig) -> BreakerPolicy:
    return BreakerPolicy(
        failure_threshold=config.failure_threshold,
        recovery_timeout_ms=config.recovery_timeout_ms,
        success_threshold=config.success_threshold,
        timeout_threshold=config.timeout_threshold,
        network_threshold=config.network_threshold,
        max_recovery_timeout_ms=config.max_recovery_timeout_ms,
    )


def request_headers(config: ProviderConfig) -> dict[str, str]:
    """The provider's configured headers: its ``api_key`` as a Bearer token, then
    ``headers``. Each transport adds Basic auth from its own URL's userinfo unless
    these carry an ``Authorization`` (see :func:`lasso.config.secrets.with_url_credentials`).
    """
    headers = {}
    if config.api_key is not None:
        headers["authorization"] = f"Bearer {config.api_key}"
    headers.update({k.lower(): v for k, v in config.headers.items()})
    return headers


class ProviderStatistics(msgspec.Struct, frozen=True):
    """One provider as health and metrics render it (URLs masked: no secret leaves)."""

    id: str
    url: str
    ws_url: str | None
    priority: int
    archival: bool
    capabilities: CapabilityStatistics
    available: bool
    http: ChannelStatistics
    ws: ChannelStatistics | None
    http_transport: HttpStatistics
    ws_transport: WsStatistics | None
    ws_connected: bool | None
    supervisor: SupervisorStatistics
    ws_supervisor: SupervisorStatistics | None


class Provider:
    """A provider of one chain, with a channel per transport; see the module docstring."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        order: int,
        breaker: CircuitBreakerConfig,
        rng: random.Random,
        chain_id: int | None = None,
        http: PostTransport | None = None,
        ws: WsConnection | None = None,
        route_ws: bool = True,
        recovery: RecoveryWatch | None = None,
        latency: LatencyBook | None = None,
        label: str | None = None,
    ) -> None:
        self.id = config.id
        self.expected_chain_id = None if chain_id is None else b'"0x%x"' % chain_id
        self.config = config
        self.order = order
        #: What it can serve, configured and learned; shared by its channels.
        self.capabilities = CapabilityBook(config)
        client = HttpcoreTransport if config.http_client == "httpcore" else HttpTransport
        self.http = http or client(
            config.url,
            with_url_credentials(config.url, request_headers(config)),  # userinfo: Basic
            provider_id=config.id,
        )
        self.ws = ws
        self._route_ws = route_ws
        self.recovery = recovery
        latency = latency or LatencyBook()
        policy = breaker_policy(breaker)
        self.channels = {
            transport: Channel(
                config.id,
                transport,
                priority=config.priority,
                order=order,
                breaker=CircuitBreaker(policy, rng),
                restarts=RestartTracker(MAX_RESTARTS, RESTART_WINDOW_S),
                latency=latency,
            )
            for transport in ((HTTP,) if ws is None else (HTTP, WS))
        }
        self._ids = itertools.count(1)
        label = label or config.id
        self.supervisor = self._supervise(label, self.run, HTTP, rng)
        self.ws_supervisor = None if ws is None else self._supervise(f"{label}/ws", ws.run, WS, rng)
        if ws is not None:
            ws.on_flap = self._ws_flapped

    def _supervise(
        self, name: str, service: Service, transport: str, rng: random.Random
    ) -> Supervisor:
        tracker = self.channels[transport].restarts  # its quarantine is the channel's
        return Supervisor(name, service, backoff=RESTART_BACKOFF, tracker=tracker, rng=rng)

    async def start(self, nursery: trio.Nursery) -> None:
        """Start its services, supervised, in ``nursery`` (cancel it to stop them)."""
        await nursery.start(self.supervisor.run)
        if self.ws_supervisor is not None:
            await nursery.start(self.ws_supervisor.run)

    def _ws_flapped(self, reason: str) -> None:
        """The WebSocket was lost before it became stable: a restart of its service."""
        if self.ws_supervisor is not None:
            self.ws_supervisor.record_restart(f"WebSocket flapped: {reason}")

    # -- channels --------------------------------------------------------------------

    def channel(self, transport: str) -> Channel:
        """The channel for ``transport`` (KeyError: not configured)."""
        return self.channels[transport]

    @property
    def ws_channel(self) -> Channel | None:
        return self.channels.get(WS)

    def routable(self) -> tuple[Channel, ...]:
        """The channels routing may use now: HTTP, and WS while it is connected."""
        if self._route_ws and self.ws is not None and self.ws.connected:
            return (self.channels[HTTP], self.channels[WS])
        return (self.channels[HTTP],)

    @property
    def transports(self) -> tuple[str, ...]:
        return tuple(c.transport for c in self.routable())

    def quarantined(self, transport: str) -> bool:
        return self.channels[transport].quarantined(trio.current_time())

    def available(self, now: float) -> bool:
        """Some routable channel can take a request (neither open nor quarantined)."""
        return any(c.available(now) for c in self.routable())

    # -- I/O ---------------------------------------------------------------------------

    async def request(self, method: str, params: bytes, transport: str = HTTP) -> tuple[bytes, int]:
        """Send one attempt; return the raw result bytes and the latency in µs."""
        if transport == WS:
            if self.ws is None:
                raise UpstreamNetworkError("no WebSocket configured", never_sent=True)
            try:
                return await self.ws.request(method, params)
            except LocalCapacity as exc:  # its pending table is full: try another channel
                raise UpstreamNetworkError(
                    f"WebSocket busy: {exc.message}", provider_id=self.id, never_sent=True
                ) from exc
        upstream_id = next(self._ids)
        body = encode_upstream(method, params, upstream_id)
        started = trio.current_time()
        response = await self.http.post(body, replay_safe=is_replay_safe(method))
        latency_us = round((trio.current_time() - started) * 1_000_000)
        result = interpret(
            response.body,
            upstream_id,
            provider_id=self.id,
            status=response.status,
            retry_after=response.retry_after,
            wall_now_s=time.time() if response.retry_after else None,
        )
        return result, latency_us

    async def run(self) -> None:
        """The provider's HTTP-side service; see :func:`lasso.upstream.probe.serve`."""
        await probe.serve(self)

    async def probe(self, transport: str = HTTP) -> bool:
        """One health probe through the channel's breaker; see :mod:`lasso.upstream.probe`."""
        return await probe.probe(self, self.channels[transport])

    # -- observability -----------------------------------------------------------------

    def statistics(self, now: float) -> ProviderStatistics:
        config, ws = self.config, self.ws
        ws_channel = self.channels.get(WS)
        return ProviderStatistics(
            id=self.id,
            # by shape and by value: a short key in a path does not look like one
            url=redact.scrub(mask_url(config.url)),
            ws_url=None if config.ws_url is None else redact.scrub(mask_url(config.ws_url)),
            priority=config.priority,
            archival=config.archival,
            capabilities=self.capabilities.statistics(now),
            available=self.available(now),
            http=self.channels[HTTP].statistics(now),
            ws=None if ws_channel is None else ws_channel.statistics(now),
            http_transport=self.http.statistics(),
            ws_transport=None if ws is None else ws.statistics(),
            ws_connected=None if ws is None else ws.connected,
            supervisor=self.supervisor.statistics(),
            ws_supervisor=None if self.ws_supervisor is None else self.ws_supervisor.statistics(),
        )
