"""The provider's HTTP-side service: probing its channels' breakers, reaping idle connections.

Once a second :func:`serve` probes every half-open channel (so a recovered
provider closes again without waiting for client traffic, which tiering sends to
healthy providers first), and now and then it closes stale idle connections.
While its chain is in recovery (no provider available, see
:mod:`lasso.core.recovery`) it probes its open channels too, at once when a
request raises the alarm and then every few hundred milliseconds.

A probe is ``eth_chainId`` through the channel like any request (admitted by its
breaker, its outcome recorded there), checked against the configured chain id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from lasso.core.breaker import CircuitState, FailureKind
from lasso.core.channel import Channel
from lasso.errors import (
    UpstreamError,
    UpstreamNetworkError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from lasso.upstream.provider import Provider

_TICK_S = 1.0
_REAP_INTERVAL_S = 15.0
PROBE_METHOD = "eth_chainId"
PROBE_TIMEOUT_S = 5.0


async def serve(provider: Provider) -> None:
    """Probe and reap for ``provider`` until cancelled; its HTTP pool is closed on the way out."""
    try:
        next_reap = trio.current_time() + _REAP_INTERVAL_S
        while True:
            if provider.recovery is None:
                await trio.sleep(_TICK_S)
            else:
                await provider.recovery.pause(_TICK_S)
            await _probe_round(provider, trio.current_time())
            now = trio.current_time()
            if now >= next_reap:
                next_reap = now + _REAP_INTERVAL_S
                await provider.http.reap_idle()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            await provider.http.aclose()


async def _probe_round(provider: Provider, now: float) -> None:
    recovering = provider.recovery is not None and provider.recovery.active(now)
    routable = provider.routable()
    for channel in list(provider.channels.values()):
        if recovering and channel in routable:
            channel.expedite(now)
        if channel.circuit(now) is CircuitState.HALF_OPEN:
            await probe(provider, channel)


async def probe(provider: Provider, channel: Channel) -> bool:
    """One health probe through ``channel``'s breaker: ``eth_chainId``, checked against config."""
    admission = channel.admit(trio.current_time())
    if not admission.admitted:
        return False
    try:
        with trio.fail_after(PROBE_TIMEOUT_S):
            result, _ = await provider.request(PROBE_METHOD, b"[]", channel.transport)
    except trio.TooSlowError:
        channel.record_failure(trio.current_time(), admission, FailureKind.TIMEOUT)
        return False
    except UpstreamError as exc:
        channel.record_failure(trio.current_time(), admission, failure_kind(exc))
        return False
    except BaseException:
        channel.record_cancelled(trio.current_time(), admission)
        raise
    if provider.expected_chain_id is not None and result != provider.expected_chain_id:
        channel.record_failure(trio.current_time(), admission, FailureKind.PROTOCOL)
        return False
    channel.record_success(trio.current_time(), admission)
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
