"""A flapping upstream WebSocket counts as restarts of its service: quarantined, then back.

On trio's MockClock with no reconnect jitter, so every instant is exact: the link
comes up, the fake node drops it 1 s later (before ``stable_after_s``), and the
connection reconnects after 0.5, 1, 2, 4, 8 s.
"""

from __future__ import annotations

import random

import trio
import trio.testing

from lasso.config import CircuitBreakerConfig, ProviderConfig
from lasso.pubsub import EventBus
from lasso.upstream.provider import WS, Provider
from lasso.upstream.ws import WsConnection, WsPolicy
from tests.support.fake_ws import FakeWsNode, open_fake_ws_node
from tests.support.fakes import FakeHttpTransport, FakeNode

POLICY = WsPolicy(reconnect_jitter=0.0, stable_after_s=5.0)
FLAPS_AT = [1.0, 2.5, 4.5, 7.5, 12.5, 21.5]  # up at 0, 1.5, 3.5, 6.5, 11.5, 20.5


def provider_with(fake: FakeWsNode) -> Provider:
    conn = WsConnection(
        "ws://p1.invalid",
        {},
        provider_id="p1",
        chain="testnet",
        bus=EventBus(),
        policy=POLICY,
        rng=random.Random(1),
        connect=fake.connect,
    )
    provider = Provider(
        ProviderConfig(id="p1", url="http://p1.invalid", ws_url="ws://p1.invalid"),
        order=0,
        breaker=CircuitBreakerConfig(),
        rng=random.Random(1),
        http=FakeHttpTransport(FakeNode(), "p1"),
        ws=conn,
    )
    return provider  # its WebSocket supervisor is its own (restarts 0.5 s .. 30 s, 5 per 60 s)


async def flap(conn: WsConnection, fake: FakeWsNode, times: int) -> list[float]:
    """Drop each of the next ``times`` links 1 s after it comes up."""
    dropped = []
    for _ in range(times):
        await conn.wait_connected()
        await trio.sleep(1.0)
        fake.drop()
        dropped.append(trio.current_time())
        await trio.testing.wait_all_tasks_blocked()  # the link notices the drop at once
        assert not conn.connected
    return dropped


async def test_a_flapping_websocket_is_quarantined_until_its_flaps_age_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_ws_node() as fake, trio.open_nursery() as nursery:
        provider = provider_with(fake)
        assert provider.ws is not None and provider.ws_supervisor is not None
        await nursery.start(provider.ws_supervisor.run)

        dropped = await flap(provider.ws, fake, 5)
        assert dropped == FLAPS_AT[:5]
        assert not provider.quarantined(WS)  # 5 restarts in 60 s is the budget
        dropped += await flap(provider.ws, fake, 1)
        assert dropped == FLAPS_AT
        assert provider.quarantined(WS)  # the 6th within the window: route around it
        stats = provider.ws_supervisor.statistics()
        assert (stats.restarts, stats.quarantined) == (6, True)
        assert stats.last_error is not None and stats.last_error.startswith("WebSocket flapped")

        # It stops flapping (reconnects at 21.5 + 16 = 37.5 and stays), and the
        # quarantine lifts exactly when the first flap leaves the window: at 61.0.
        await provider.ws.wait_connected()
        assert trio.current_time() == 37.5
        await trio.sleep_until(60.999)
        assert provider.quarantined(WS)
        await trio.sleep_until(61.0)
        assert not provider.quarantined(WS)
        assert provider.ws.connected and provider.transports == ("http", "ws")
        nursery.cancel_scope.cancel()


async def test_dial_failures_and_stable_links_are_not_flaps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_fake_ws_node() as fake, trio.open_nursery() as nursery:
        provider = provider_with(fake)
        assert provider.ws is not None and provider.ws_supervisor is not None
        await nursery.start(provider.ws_supervisor.run)
        for _ in range(3):  # up for 6 s (stable after 5), then lost: not a flap
            await provider.ws.wait_connected()
            await trio.sleep(6.0)
            fake.drop()
        fake.refuse = True  # then ten refused dials: no link, nothing to flap
        await trio.sleep(120.0)
        stats = provider.ws_supervisor.statistics()
        assert provider.ws.statistics().reconnects >= 10
        assert (stats.restarts, stats.quarantined) == (0, False)
        nursery.cancel_scope.cancel()
