"""One upstream provider: its transports, breakers and rate-limit state.

``request(method, params)`` is the only thing the dispatcher calls: it sends
one attempt over one transport and returns ``(raw_result, latency_us)`` or
raises a classified :mod:`lasso.errors` upstream error. Whether to retry,
and where, is the dispatcher's business; what the attempt means for the
provider's health is recorded by the dispatcher too (see ``lasso.dispatch``).

``run()`` is the provider's long-lived service, owned by the daemon's
provider nursery under a :class:`~lasso.upstream.supervisor.Supervisor`.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import TYPE_CHECKING

import trio

from lasso.config import CircuitBreakerConfig, ProviderConfig
from lasso.config.secrets import with_url_credentials
from lasso.core.breaker import BreakerPolicy, CircuitBreaker, CircuitState, FailureKind
from lasso.core.jsonrpc import encode_upstream
from lasso.core.methods import is_replay_safe
from lasso.core.ratelimit import RateLimitState
from lasso.core.reply import interpret
from lasso.errors import (
    LocalCapacity,
    UpstreamError,
    UpstreamNetworkError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from lasso.upstream.http import HttpTransport, PostTransport
from lasso.upstream.recovery import RecoveryWatch
from lasso.upstream.ws import WsConnection

if TYPE_CHECKING:
    from lasso.upstream.supervisor import Supervisor

HTTP = "http"
WS = "ws"
_TICK_S = 1.0
_REAP_INTERVAL_S = 15.0
PROBE_METHOD = "eth_chainId"
PROBE_TIMEOUT_S = 5.0


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


class Provider:
    """A provider of one chain, with a channel per transport."""

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
    ) -> None:
        self.id = config.id
        self.expected_chain_id = None if chain_id is None else b'"0x%x"' % chain_id
        self.config = config
        self.order = order
        self.http = http or HttpTransport(
            config.url,
            with_url_credentials(config.url, request_headers(config)),  # userinfo: Basic
            provider_id=config.id,
        )
        self.ws = ws
        self._route_ws = route_ws
        self.recovery = recovery
        policy = breaker_policy(breaker)
        self.breakers = {HTTP: CircuitBreaker(policy, rng)}
        self.rate_limits = {HTTP: RateLimitState()}
        if ws is not None:
            self.breakers[WS] = CircuitBreaker(policy, rng)
            self.rate_limits[WS] = RateLimitState()
        self._ids = itertools.count(1)
        self.supervisor: Supervisor | None = None
        self.ws_supervisor: Supervisor | None = None
        if ws is not None:
            ws.on_flap = self._ws_flapped

    def _ws_flapped(self, reason: str) -> None:
        """The WebSocket was lost before it became stable: a restart of its service."""
        if self.ws_supervisor is not None:
            self.ws_supervisor.record_restart(f"WebSocket flapped: {reason}")

    def quarantined(self, transport: str) -> bool:
        """Its service for this transport restarted too often lately: route around it."""
        supervisor = self.ws_supervisor if transport == WS else self.supervisor
        return supervisor is not None and supervisor.quarantined

    @property
    def transports(self) -> tuple[str, ...]:
        """The channels routing may use now: HTTP, and WS while it is connected."""
        if self._route_ws and self.ws is not None and self.ws.connected:
            return (HTTP, WS)
        return (HTTP,)

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
        """The provider's long-lived service.

        Once a second it probes every half-open breaker (so a recovered provider
        closes again without waiting for client traffic, which tiering sends to
        healthy providers first), and now and then it closes stale idle connections.
        While its chain is in recovery (no provider available, see
        :mod:`lasso.core.recovery`) it probes its open breakers too, at once when a
        request raises the alarm and then every few hundred milliseconds.
        """
        try:
            next_reap = trio.current_time() + _REAP_INTERVAL_S
            while True:
                if self.recovery is None:
                    await trio.sleep(_TICK_S)
                else:
                    await self.recovery.pause(_TICK_S)
                await self._probe_round(trio.current_time())
                now = trio.current_time()
                if now >= next_reap:
                    next_reap = now + _REAP_INTERVAL_S
                    await self.http.reap_idle()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await self.http.aclose()

    async def _probe_round(self, now: float) -> None:
        recovering = self.recovery is not None and self.recovery.active(now)
        routable = self.transports
        for transport, breaker in self.breakers.items():
            if recovering and transport in routable:
                breaker.expedite(now)
            if breaker.state(now) is CircuitState.HALF_OPEN:
                await self.probe(transport)

    async def probe(self, transport: str = HTTP) -> bool:
        """One health probe through the breaker: ``eth_chainId``, checked against config."""
        breaker = self.breakers[transport]
        admission = breaker.admit(trio.current_time())
        if not admission.admitted:
            return False
        try:
            with trio.fail_after(PROBE_TIMEOUT_S):
                result, _ = await self.request(PROBE_METHOD, b"[]", transport)
        except trio.TooSlowError:
            breaker.record_failure(trio.current_time(), admission, FailureKind.TIMEOUT)
            return False
        except UpstreamError as exc:
            breaker.record_failure(trio.current_time(), admission, failure_kind(exc))
            return False
        except BaseException:
            breaker.record_cancelled(trio.current_time(), admission)
            raise
        if self.expected_chain_id is not None and result != self.expected_chain_id:
            breaker.record_failure(trio.current_time(), admission, FailureKind.PROTOCOL)
            return False
        breaker.record_success(trio.current_time(), admission)
        return True


def failure_kind(exc: UpstreamError) -> FailureKind:
    """What a provider failure counts as for its breaker."""
    if isinstance(exc, UpstreamTimeout):
        return FailureKind.TIMEOUT
    if isinstance(exc, UpstreamNetworkError):
        return FailureKind.NETWORK
    if isinstance(exc, UpstreamProtocolError):
        return FailureKind.PROTOCOL
    return FailureKind.SERVER
