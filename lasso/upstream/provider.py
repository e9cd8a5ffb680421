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
from typing import TYPE_CHECKING

import trio

from lasso.config import CircuitBreakerConfig, ProviderConfig
from lasso.core.breaker import BreakerPolicy, CircuitBreaker
from lasso.core.jsonrpc import encode_upstream
from lasso.core.ratelimit import RateLimitState
from lasso.core.reply import interpret
from lasso.upstream.http import HttpTransport, PostTransport

if TYPE_CHECKING:
    from lasso.upstream.supervisor import Supervisor

HTTP = "http"
WS = "ws"
_REAP_INTERVAL_S = 15.0


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
        http: PostTransport | None = None,
    ) -> None:
        self.id = config.id
        self.config = config
        self.order = order
        self.http = http or HttpTransport(
            config.url, request_headers(config), provider_id=config.id
        )
        policy = breaker_policy(breaker)
        self.breakers = {HTTP: CircuitBreaker(policy, rng)}
        self.rate_limits = {HTTP: RateLimitState()}
        self._ids = itertools.count(1)
        self.supervisor: Supervisor | None = None

    @property
    def transports(self) -> tuple[str, ...]:
        return tuple(self.breakers)

    async def request(self, method: str, params: bytes, transport: str = HTTP) -> tuple[bytes, int]:
        """Send one attempt; return the raw result bytes and the latency in µs."""
        upstream_id = next(self._ids)
        body = encode_upstream(method, params, upstream_id)
        started = trio.current_time()
        response = await self.http.post(body)
        latency_us = round((trio.current_time() - started) * 1_000_000)
        result = interpret(
            response.body,
            upstream_id,
            provider_id=self.id,
            status=response.status,
            retry_after=response.retry_after,
        )
        return result, latency_us

    async def run(self) -> None:
        """The provider's long-lived service: keeps its connections fresh."""
        try:
            while True:
                await trio.sleep(_REAP_INTERVAL_S)
                await self.http.reap_idle()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await self.http.aclose()
