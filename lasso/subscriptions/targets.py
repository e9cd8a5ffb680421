"""Where a stream subscribes upstream: the choice of provider, and its head.

Theory of operation. A stream (at start, or failing over) tries the chain's
providers in priority order (``priority``, then configuration order), only those
with a connected WebSocket whose WebSocket breaker is not open and that allow
``eth_subscribe`` (provider ``subscriptions``, true by default); the provider it
just left (``exclude``) is tried last, since it may be the only one. A stream
pinned to one provider (``/ws/rpc/provider/{id}/...``) tries that one only.

A newHeads stream that has delivered a head passes ``behind``: each candidate is
first asked ``eth_blockNumber`` on the WebSocket the stream would subscribe on
(that provider's own head, nobody else's), and one below the delivered head is
passed over and recorded in ``behind``, so the clients' head never goes back.
The first candidate whose ``eth_subscribe`` is confirmed serves the stream; when
none is, :class:`~lasso.errors.NoProviderAvailable` says why each was passed over.
"""

from __future__ import annotations

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.breaker import CircuitState
from lasso.errors import LassoError, NoProviderAvailable
from lasso.subscriptions.subscribing import SUBSCRIBE_TIMEOUT_S, Spawn, subscribe_upstream
from lasso.upstream.provider import WS, Provider

_decode = msgspec.json.decode


async def subscribe_first(
    chain: ChainRuntime,
    params: bytes,
    exclude: set[str],
    *,
    pinned: str | None,
    spawn: Spawn | None,
    tip: int | None = None,
    behind: dict[str, int] | None = None,
) -> tuple[Provider, str]:
    """Subscribe on the first usable provider: it and the upstream subscription id.

    With ``behind`` (a newHeads stream that has delivered head ``tip``), only a
    provider at or above ``tip`` is used; the others are recorded in ``behind``.
    """
    errors: list[str] = []
    for provider in candidates(chain, pinned, exclude, trio.current_time()):
        assert provider.ws is not None
        try:
            if behind is not None and await _is_behind(provider, tip, behind):
                errors.append(f"{provider.id}: behind the delivered head {tip}")
                continue
            return provider, await subscribe_upstream(provider.ws, params, spawn)
        except (LassoError, trio.TooSlowError, msgspec.DecodeError, ValueError) as exc:
            errors.append(f"{provider.id}: {exc}")
    detail = "; ".join(errors) or "no provider with a connected WebSocket that allows subscriptions"
    raise NoProviderAvailable(f"Could not subscribe upstream: {detail}")


def candidates(
    chain: ChainRuntime, pinned: str | None, exclude: set[str], now: float
) -> list[Provider]:
    """The providers a stream may subscribe on, in the order to try them."""
    providers = sorted(chain.providers.values(), key=lambda p: (p.config.priority, p.order))
    if pinned is not None:  # a pinned provider no longer in the chain: none to try
        providers = [p for p in providers if p.id == pinned]
    usable = [
        p
        for p in providers
        if p.ws is not None
        and p.capabilities.subscriptions  # ``subscriptions = false``: never eth_subscribe
        and p.ws.connected
        and p.channel(WS).circuit(now) is not CircuitState.OPEN
    ]
    preferred = [p for p in usable if p.id not in exclude]
    return preferred + [p for p in usable if p.id in exclude]


async def ws_head(provider: Provider) -> int:
    """``provider``'s head, asked on its own WebSocket within SUBSCRIBE_TIMEOUT_S."""
    assert provider.ws is not None
    with trio.fail_after(SUBSCRIBE_TIMEOUT_S):
        result, _ = await provider.ws.request("eth_blockNumber", b"[]")
    return int(_decode(result, type=str), 16)


async def _is_behind(provider: Provider, tip: int | None, behind: dict[str, int]) -> bool:
    """Whether ``provider`` is behind the delivered head ``tip`` (recorded in ``behind``)."""
    head = await ws_head(provider)
    if tip is not None and head < tip:
        behind[provider.id] = head
        return True
    return False
