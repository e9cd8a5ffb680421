"""Who serves one subscription stream: the one record of it.

Theory of operation. A :class:`Serving` is created when an upstream
``eth_subscribe`` is confirmed for a stream and names everything about that
fact: the provider object (not its id: the provider may leave the chain while
the stream still holds it), its WebSocket channel (whose breaker decides when the
stream must leave), the connection the subscription lives on, and the upstream
subscription id. The stream owns it (``Stream.serving``); nothing else records who
serves whom:

    routing          the hub's index of upstream notifications is keyed by
                     :attr:`Serving.route` and holds the record itself, entered
                     and removed only when the stream changes its record; a
                     notification becomes ``Live(serving, payload)`` and the
                     stream drops one whose record is not its current one
    losing it        :meth:`Serving.lost`: the provider left the chain, its
                     WebSocket breaker opened, or its connection is not the one
                     the subscription lives on
    ending it        :meth:`Serving.unsubscribe` on the same connection, or
                     nothing: an upstream subscription dies with its connection

The WebSocket link keeps its own tally of the upstream ids open on it (a wire
fact, for its statistics); it is never asked who serves a stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lasso.core.breaker import CircuitState
from lasso.subscriptions.subscribing import unsubscribe_quietly
from lasso.upstream.provider import WS, Provider

if TYPE_CHECKING:
    from lasso.chain import ChainRuntime
    from lasso.subscriptions.events import Live

__all__ = ["Serving"]


class Serving:
    """Upstream subscription ``upstream_id`` on ``provider``'s current WebSocket."""

    __slots__ = ("channel", "connection_id", "deliver", "provider", "upstream_id", "ws")

    def __init__(
        self, provider: Provider, upstream_id: str, deliver: Callable[[Live], None]
    ) -> None:
        ws = provider.ws
        assert ws is not None, "only a provider with a WebSocket serves subscriptions"
        self.provider = provider
        self.channel = provider.channel(WS)
        self.ws = ws
        self.connection_id = ws.connection_id
        self.upstream_id = upstream_id
        self.deliver = deliver  # the stream's inbox

    @property
    def provider_id(self) -> str:
        return self.provider.id

    @property
    def route(self) -> tuple[str, str]:
        """What an upstream notification names: (provider id, upstream subscription id)."""
        return (self.provider.id, self.upstream_id)

    def lost(self, chain: ChainRuntime, now: float) -> str | None:
        """Why this record no longer serves (None: it still does)."""
        if chain.providers.get(self.provider.id) is not self.provider:
            return "provider removed from the chain"
        if self.channel.circuit(now) is CircuitState.OPEN:
            return "circuit breaker open"
        return None

    def alive(self) -> bool:
        """Its connection is still the one the upstream subscription lives on."""
        return self.ws.connected and self.ws.connection_id == self.connection_id

    async def unsubscribe(self) -> None:
        """Drop the upstream subscription, if its connection still lives (bounded)."""
        if self.alive():
            await unsubscribe_quietly(self.ws, self.upstream_id)
