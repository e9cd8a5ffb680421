"""Head tracking per provider on virtual time: polling, newHeads, fallbacks, live config."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.config import parse_settings
from lasso.upstream import heads
from lasso.upstream.http import HttpResponse
from tests.support.fake_ws import FakeWsNode, open_fake_ws_node, websockets_for
from tests.support.fakes import FakeHttpTransport, FakeNode

BASE = """
[chains.c]
chain_id = 31337
block_time_ms = {block_time_ms}
{extra}
providers = [{providers}]
"""
HTTP_ONLY = '{ id = "a", url = "http://a.invalid" }'
WITH_WS = '{ id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid" }'
STORM = 50
NO_SUBS = '{ id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid", subscriptions = false }'


class Polls(FakeHttpTransport):
    """Records the virtual time of every HTTP call, by method."""

    def __init__(self, node: FakeNode, provider_id: str) -> None:
        super().__init__(node, provider_id)
        self.times: list[tuple[str, float]] = []

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        now = trio.current_time()
        if sum(1 for _, t in self.times[-STORM:] if t == now) == STORM:
            # a poll storm in one virtual instant would never let the clock move: end it
            raise AssertionError(f"{STORM} calls at t={now}")
        self.times.append((msgspec.json.decode(body)["method"], now))
        return await super().post(body, replay_safe=replay_safe)

    def head_polls(self) -> list[float]:
        return [t for method, t in self.times if method == "eth_getBlockByNumber"]


class Rig:
    def __init__(self, chain: ChainRuntime, node: FakeNode, http: Polls, ws: FakeWsNode) -> None:
        self.chain, self.node, self.http, self.ws = chain, node, http, ws

    def height(self) -> int | None:
        return self.chain.state.height("a")

    async def wait_height(self, number: int) -> None:
        with trio.fail_after(60):
            while self.height() != number:
                await self.chain.head_changed()

    async def ws_connected(self) -> None:
        """Return once provider a's WebSocket is connected."""
        ws = self.chain.providers["a"].ws
        assert ws is not None
        await ws.wait_connected()


@asynccontextmanager
async def open_rig(
    providers: str = HTTP_ONLY, *, block_time_ms: int = 1000, extra: str = ""
) -> AsyncIterator[Rig]:
    text = BASE.format(block_time_ms=block_time_ms, extra=extra, providers=providers)
    settings = parse_settings(text, env={})
    node = FakeNode(head=100)
    http = Polls(node, "a")
    async with open_fake_ws_node(node) as fake, trio.open_nursery() as nursery:
        chain = ChainRuntime(
            "c",
            settings.default_profile.chains["c"],
            routing=settings.routing,
            rng=random.Random(1),
            transports=lambda _c, _p: http,
            websockets=websockets_for("c", fake.connect),
        )
        rig = Rig(chain, node, http, fake)
        await chain.start(nursery)
        yield rig
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_subscribed_rig() -> AsyncIterator[Rig]:
    """A rig whose provider has a WebSocket, once its newHeads subscription is up."""
    async with open_rig(WITH_WS) as rig:
        await subscribed(rig.ws, within_s=5)
        yield rig


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def subscribed(fake: FakeWsNode, *, within_s: float) -> None:
    """Return once the node holds exactly one subscription (checked every 10 ms)."""
    with trio.fail_after(within_s):
        while fake.subscriptions != 1:  # noqa: ASYNC110  # the fake has no event to wait on
            await trio.sleep(0.01)


async def test_a_provider_without_websocket_is_polled_at_half_the_block_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(block_time_ms=1000) as rig:
        await rig.wait_height(100)  # the first poll goes out at once
        assert trio.current_time() == 0
        await trio.sleep(2.01)
        polls = rig.http.head_polls()
        assert gaps(polls) == [0.5] * 4  # the configured block time: nothing measured yet
        rig.node.head = 101
        await rig.wait_height(101)
        assert trio.current_time() == 2.5
        # Not client traffic: no breaker outcome, no latency sample.
        channel = rig.chain.providers["a"].channel("http")
        assert channel.statistics(trio.current_time()).breaker.consecutive_failures == 0
        assert rig.chain.latency.statistics().entries == ()
        assert rig.chain.state.height("a") == 101


async def test_the_poll_interval_follows_the_measured_block_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(block_time_ms=1000) as rig:
        await rig.wait_height(100)
        for _ in range(5):  # a block every 4 s
            await trio.sleep(4.1)
            rig.node.head += 1
        await rig.wait_height(105)
        measured_ms = rig.chain.state.block_time_ms
        assert 3500 <= measured_ms <= 4600
        before = len(rig.http.head_polls())
        await trio.sleep(20.01)
        assert gaps(rig.http.head_polls()[before - 1 :]) == [round(measured_ms / 2000, 6)] * 8


async def test_head_poll_ms_is_read_live_and_zero_turns_tracking_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(block_time_ms=1000, extra="head_poll_ms = 300") as rig:
        await rig.wait_height(100)
        await trio.sleep(0.91)
        assert gaps(rig.http.head_polls()) == [0.3, 0.3, 0.3]
        config = rig.chain.config
        rig.chain.reconfigure(msgspec.structs.replace(config, head_poll_ms=0), rig.chain.routing)
        await trio.sleep(0.3)  # the poll already scheduled
        count = len(rig.http.head_polls())
        await trio.sleep(30)
        assert len(rig.http.head_polls()) == count  # off: nothing goes upstream
        rig.chain.reconfigure(msgspec.structs.replace(config, head_poll_ms=2000), rig.chain.routing)
        await trio.sleep(1.0)  # the off tracker looks at the key every second
        rig.node.head = 105
        await rig.wait_height(105)
        assert gaps(rig.http.head_polls()[count:]) == [2.0]


async def test_a_reload_shortening_head_poll_ms_applies_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(block_time_ms=1000, extra="head_poll_ms = 15000") as rig:
        await rig.wait_height(100)  # polled at 0; the next would be at 15 s
        await trio.sleep(1.0)
        config = rig.chain.config
        rig.chain.reconfigure(msgspec.structs.replace(config, head_poll_ms=300), rig.chain.routing)
        await trio.sleep(0.65)
        assert rig.http.head_polls() == [0.0, 1.0, 1.3, 1.6]  # not the old wait's 15 s


async def test_zero_from_the_start_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async with open_rig(WITH_WS, extra="head_poll_ms = 0") as rig:
        await trio.sleep(60)
        assert rig.http.head_polls() == []
        assert rig.ws.subscriptions == 0
        assert rig.height() is None


async def test_a_failing_provider_is_retried_with_backoff_and_never_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(block_time_ms=1000) as rig:
        await rig.wait_height(100)
        rig.node.fault = Fault.HTML_500
        await trio.sleep(20)
        failing = len(rig.http.head_polls())
        assert failing < 20  # backed off, not 40 polls in 20 s
        rig.node.fault = None
        rig.node.head = 110
        await rig.wait_height(110)
        channel = rig.chain.providers["a"].channel("http")
        assert channel.statistics(trio.current_time()).breaker.consecutive_failures == 0


async def test_a_provider_with_websocket_is_tracked_by_its_newheads_subscription(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_subscribed_rig() as rig:
        fake = rig.ws
        polls = len(rig.http.head_polls())  # at most the first, before the socket was up
        for _ in range(5):
            await trio.sleep(0.4)
            head = fake.emit_head()
            await rig.wait_height(int(head["number"], 16))
        assert len(rig.http.head_polls()) == polls  # heads came pushed, not polled
        assert rig.chain.state.is_forked("a", trio.current_time()) is False


async def test_a_quiet_subscription_gets_an_http_check(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_subscribed_rig() as rig:
        before = len(rig.http.head_polls())
        rig.node.head = 120  # mined without a push: the subscription went quiet
        await rig.wait_height(120)
        assert len(rig.http.head_polls()) == before + 1  # one check, after two block times


async def test_while_the_websocket_is_down_the_head_is_polled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_subscribed_rig() as rig:
        fake = rig.ws
        fake.refuse = True
        fake.drop()
        before = len(rig.http.head_polls())
        rig.node.head = 130
        await rig.wait_height(130)
        await trio.sleep(3)
        assert len(rig.http.head_polls()) - before >= 6  # polling at 0.5 s
        fake.refuse = False  # the socket comes back: subscribed again, polls stop
        await subscribed(fake, within_s=60)
        settled = len(rig.http.head_polls())
        for _ in range(3):
            await trio.sleep(0.5)
            fake.emit_head()
        await rig.wait_height(133)
        assert len(rig.http.head_polls()) == settled


async def test_a_lost_link_forgets_the_height_until_the_provider_reports_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The node behind the socket may have restarted from genesis: the height it had is
    # not known any more (a read routed on it would trust blocks it no longer has).
    async with open_subscribed_rig() as rig:
        assert rig.height() == 100
        rig.node.fault = Fault.HTML_500  # the node is down: polls fail
        rig.ws.refuse = True
        rig.ws.drop()
        dropped_at = trio.current_time()
        with trio.fail_after(2):  # noticed within a tick (forgetting reports no head)
            while rig.height() is not None:  # noqa: ASYNC110  # no event for a forgotten head
                await trio.sleep(0.01)
        assert trio.current_time() - dropped_at <= heads.TICK_S + 0.01
        rig.node.fault = None
        rig.node.head = 3  # back from genesis, replaying
        await rig.wait_height(3)


async def test_subscriptions_false_is_polled_not_subscribed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_rig(NO_SUBS, block_time_ms=1000) as rig:
        await rig.wait_height(100)
        await rig.ws_connected()
        rig.node.head = 101
        await rig.wait_height(101)
        await trio.sleep(5)
        assert rig.ws.subscriptions == 0
        assert "eth_subscribe" not in rig.node.calls
        assert len(rig.http.head_polls()) >= 10


async def test_a_removed_provider_stops_reporting(autojump_clock: trio.testing.MockClock) -> None:
    async with open_rig(block_time_ms=1000) as rig:
        await rig.wait_height(100)
        rig.chain.remove_provider("a", drain_s=5.0)
        rig.node.head = 150
        await trio.sleep(2)  # still draining: its tracker polls but reports nothing
        assert rig.height() is None
        await trio.sleep(5)
        count = len(rig.http.head_polls())
        await trio.sleep(10)
        assert len(rig.http.head_polls()) == count  # stopped with its scope


async def test_reconfigure_passes_the_block_time_to_the_chain_state() -> None:
    settings = parse_settings(
        BASE.format(block_time_ms=1000, extra="", providers=HTTP_ONLY), env={}
    )
    config = settings.default_profile.chains["c"]
    chain = ChainRuntime("c", config, routing=settings.routing, rng=random.Random(1))
    assert chain.state.block_time_ms == 1000
    chain.reconfigure(msgspec.structs.replace(config, block_time_ms=3000), settings.routing)
    assert chain.state.block_time_ms == 3000


async def test_a_reload_to_subscriptions_false_unsubscribes_and_polls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_subscribed_rig() as rig:
        provider = rig.chain.providers["a"]
        rig.chain.retune(msgspec.structs.replace(provider.config, subscriptions=False))
        await trio.sleep(1.01)  # within a tick
        assert rig.ws.subscriptions == 0
        before = len(rig.http.head_polls())
        rig.node.head = 140
        await rig.wait_height(140)
        await trio.sleep(2)
        assert len(rig.http.head_polls()) - before >= 4


async def test_a_websocket_that_refuses_newheads_is_polled(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake answers an unknown subscription kind as anvil does: -32602.
    monkeypatch.setattr(heads, "NEW_HEADS_PARAMS", b'["newHeadz"]')
    async with open_rig(WITH_WS, block_time_ms=1000) as rig:
        await rig.ws_connected()
        await rig.wait_height(100)
        start = len(rig.http.head_polls())
        rig.node.head = 101
        await rig.wait_height(101)
        await trio.sleep(3)
        assert 6 <= len(rig.http.head_polls()) - start <= 8  # polled at 0.5 s, no storm
        assert rig.node.calls.count("eth_subscribe") == 1  # asked once on this connection
