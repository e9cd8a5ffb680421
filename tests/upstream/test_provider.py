"""The provider edge: foreign and local errors become failover-able upstream errors."""

from __future__ import annotations

import random

import pytest
import trio

from lasso.config import CircuitBreakerConfig, ProviderConfig
from lasso.errors import LocalCapacity, UpstreamNetworkError
from lasso.upstream.provider import WS, Provider
from tests.support.fakes import FakeHttpTransport, FakeNode


class FullWebSocket:
    connected = True

    async def run(self) -> None:  # its service (never started here)
        await trio.sleep_forever()

    async def request(self, method: str, params: bytes) -> tuple[bytes, int]:
        raise LocalCapacity("256 requests already pending")


async def test_a_full_websocket_is_a_never_sent_network_error() -> None:
    config = ProviderConfig(id="p", url="http://p.invalid", ws_url="ws://p.invalid")
    provider = Provider(
        config,
        order=0,
        breaker=CircuitBreakerConfig(),
        rng=random.Random(1),
        http=FakeHttpTransport(FakeNode(), "p"),
        ws=FullWebSocket(),  # type: ignore[arg-type]
    )
    with pytest.raises(UpstreamNetworkError) as info:
        await provider.request("eth_blockNumber", b"[]", WS)
    assert info.value.never_sent  # safe to send anywhere else, even a write
    assert info.value.provider_id == "p"
