"""WsConnection against the in-memory fake node, mostly on trio's MockClock.

Times are virtual and asserted exactly: the fake runs the real WebSocket
protocol over memory streams, which takes no virtual time, so every instant
below comes from a timer in the code under test (backoff, heartbeat,
stability, connect timeout) or a sleep in the test.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from lasso.chaos.faults import Fault
from lasso.errors import LocalCapacity, UpstreamNetworkError, UpstreamRpcError
from lasso.pubsub import (
    EventBus,
    Notification,
    SubscriptionConfirmed,
    WsClosed,
    WsConnected,
    WsDisconnected,
    WsError,
    WsReconnecting,
    WsStable,
)
from lasso.upstream.ws import Dialed, WsConnection, WsPolicy
from lasso.upstream.ws.frames import Junk, Push, Reply, StrayError, parse_frame
from lasso.upstream.ws.state import IllegalTransition, WsState, check_transition
from tests.support.fake_ws import FakeWsNode, open_fake_ws_node
from tests.support.fakes import FakeNode

URL = "ws://fake.invalid/rpc"
REFUSED = "connect failed: [Errno 111] Connection refused"
LOST = "connection lost (1006 abnormal closure)"
NEW_HEADS = b'["newHeads"]'
HANG_GUARD_S = 600.0  # virtual seconds on the MockClock, where a hang would spin forever


class Timeline:
    """Every event published on one topic, with the virtual time it was received."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Any]] = []
        self._changed = trio.Event()

    async def record(
        self, bus: EventBus, topic: str, *, task_status: trio.TaskStatus[None]
    ) -> None:
        with bus.subscribe(topic) as channel:
            task_status.started()
            async for event in channel:
                self.events.append((trio.current_time(), event))
                self._changed.set()
                self._changed = trio.Event()

    def of(self, kind: type) -> list[tuple[float, Any]]:
        return [(t, e) for t, e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type, count: int = 1) -> tuple[float, Any]:
        while len(self.of(kind)) < count:
            await self._changed.wait()
        return self.of(kind)[count - 1]

    def normalised(self) -> list[tuple[float, Any]]:
        """Events with connection ids blanked (they are process-unique counters)."""
        return [
            (t, WsConnected(e.provider_id, "*") if isinstance(e, WsConnected) else e)
            for t, e in self.events
        ]


@dataclass
class Harness:
    conn: WsConnection
    fake: FakeWsNode
    bus: EventBus
    conn_events: Timeline = field(default_factory=Timeline)
    subs_events: Timeline = field(default_factory=Timeline)


@asynccontextmanager
async def harness(
    policy: WsPolicy | None = None,
    *,
    seed: int = 1,
    node: FakeNode | None = None,
    wrap: Callable[[FakeWsNode], Any] | None = None,
    wait_connected: bool = True,
) -> AsyncIterator[Harness]:
    async with open_fake_ws_node(node) as fake:
        bus = EventBus()
        conn = WsConnection(
            URL,
            {"Authorization": "Bearer key"},
            provider_id="p1",
            chain="testnet",
            bus=bus,
            policy=policy or WsPolicy(),
            rng=random.Random(seed),
            connect=wrap(fake) if wrap else fake.connect,
        )
        h = Harness(conn, fake, bus)
        with trio.fail_after(HANG_GUARD_S):
            async with trio.open_nursery() as nursery:
                await nursery.start(h.conn_events.record, bus, "ws:conn:testnet")
                await nursery.start(h.subs_events.record, bus, "ws:subs:testnet")
                await nursery.start(conn.run)
                if wait_connected:
                    await conn.wait_connected()
                yield h
                nursery.cancel_scope.cancel()


async def outcome(call: Awaitable[tuple[bytes, int]]) -> Any:
    try:
        return await call
    except Exception as exc:
        return exc


def decode(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


# --- requests -----------------------------------------------------------------


async def test_answers_and_latency(autojump_clock: trio.testing.MockClock) -> None:
    node = FakeNode(delay_s=0.25)
    async with harness(node=node) as h:
        assert await h.conn.request("eth_chainId", b"[]") == (b'"0x7a69"', 250_000)
        assert h.fake.handshake_headers[0][b"authorization"] == b"Bearer key"


@pytest.mark.slow  # about 0.23 s
async def test_thousand_concurrent_requests_on_one_connection() -> None:
    node = FakeNode(head=1000)
    answers: dict[int, Any] = {}
    async with harness(WsPolicy(max_pending=1000), node=node) as h:

        async def fetch(n: int) -> None:
            params = b'["%b",false]' % hex(n).encode()
            result, _ = await h.conn.request("eth_getBlockByNumber", params)
            answers[n] = decode(result)

        async with trio.open_nursery() as nursery:
            for n in range(1000):
                nursery.start_soon(fetch, n)
        stats = h.conn.statistics()
    assert sorted(answers) == list(range(1000))
    assert all(int(block["number"], 16) == n for n, block in answers.items())
    assert len({block["hash"] for block in answers.values()}) == 1000
    assert (stats.requests, stats.pending, stats.unmatched_frames, stats.connects) == (
        1000,
        0,
        0,
        1,
    )


async def test_errors_are_classified_as_over_http(autojump_clock: trio.testing.MockClock) -> None:
    node = FakeNode()
    async with harness(node=node) as h:
        node.queued.extend([Fault.REVERT, Fault.METHOD_NOT_FOUND])
        revert = await outcome(h.conn.request("eth_call", b"[]"))
        missing = await outcome(h.conn.request("eth_foo", b"[]"))
    assert isinstance(revert, UpstreamRpcError)
    assert (revert.rpc_code, revert.category, revert.provider_id) == (3, "deterministic", "p1")
    assert isinstance(missing, UpstreamRpcError)
    assert (missing.rpc_code, missing.category) == (-32601, "capability")


async def test_pending_limit_gives_local_capacity(autojump_clock: trio.testing.MockClock) -> None:
    node = FakeNode()
    node.fault = Fault.HANG
    async with harness(WsPolicy(max_pending=3), node=node) as h, trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(h.conn.request, "eth_blockNumber", b"[]")
        await trio.testing.wait_all_tasks_blocked()
        assert h.conn.statistics().pending == 3
        with pytest.raises(LocalCapacity, match="limit 3"):
            await h.conn.request("eth_blockNumber", b"[]")
        nursery.cancel_scope.cancel()


async def test_cancelled_request_leaves_no_pending_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = FakeNode(delay_s=2.0)
    async with harness(node=node) as h:
        with trio.move_on_after(1.0) as scope:
            await h.conn.request("eth_blockNumber", b"[]")
        assert scope.cancelled_caught
        assert h.conn.statistics().pending == 0
        await trio.sleep(1.5)  # the late reply arrives at t=2 and finds no one
        assert h.conn.statistics().unmatched_frames == 1
        assert h.conn.connected  # a late reply is not a reason to drop the link


async def test_a_frame_abandoned_while_queued_is_never_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = FakeNode()
    async with harness(node=node) as h, trio.open_nursery() as nursery:
        h.fake.silence()  # writes block, as behind a full TCP window
        nursery.start_soon(h.conn.request, "eth_blockNumber", b"[]")  # blocks the writer
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(1.0):
            await h.conn.request("eth_sendRawTransaction", b'["0x01"]')  # given up while queued
        assert h.conn.statistics().pending == 1
        h.fake.resume()
        assert await h.conn.request("eth_chainId", b"[]") == (b'"0x7a69"', 0)
    assert node.calls == ["eth_blockNumber", "eth_chainId"]


async def test_frames_queued_behind_a_stalled_writer_fail_as_never_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: dict[str, Any] = {}
    async with harness() as h:
        h.fake.silence()

        async def call(name: str, method: str) -> None:
            got[name] = await outcome(h.conn.request(method, b"[]"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "stuck", "eth_blockNumber")  # its frame blocks the writer
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(call, "queued", "eth_sendRawTransaction")
    # the heartbeat's ping queues behind the stuck frame too: dead at 15 + 5
    assert h.conn_events.of(WsDisconnected) == [(20.0, WsDisconnected("p1", "no pong within 5 s"))]
    assert got["stuck"].never_sent is False  # its frame may have left: not safe to replay
    assert got["queued"].never_sent is True  # provably never left: safe on another provider


async def test_wrong_id_is_unmatched_and_the_caller_deadline_ends_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = FakeNode()
    async with harness(node=node) as h:
        node.queued.append(Fault.WRONG_ID)
        with trio.move_on_after(3.0) as scope:
            await h.conn.request("eth_blockNumber", b"[]")
        assert scope.cancelled_caught
        assert h.conn.statistics().unmatched_frames == 1
        assert await h.conn.request("eth_blockNumber", b"[]") == (b'"0x64"', 0)


async def test_disconnect_fails_every_pending_request_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = FakeNode()
    node.fault = Fault.HANG
    failures: list[tuple[float, Any]] = []
    async with harness(node=node) as h:

        async def call() -> None:
            exc = await outcome(h.conn.request("eth_call", b"[]"))
            failures.append((trio.current_time(), exc))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(call)
            await trio.sleep(2.0)
            assert h.conn.statistics().pending == 10
            h.fake.drop()
        assert h.conn.statistics().pending == 0
        assert h.conn_events.of(WsDisconnected) == [(2.0, WsDisconnected("p1", LOST))]
    assert [t for t, _ in failures] == [2.0] * 10
    for _, exc in failures:
        assert isinstance(exc, UpstreamNetworkError)
        assert exc.never_sent is False  # they were on the wire: not safe to replay blindly
        assert exc.provider_id == "p1"
        assert LOST in exc.message


async def test_not_connected_is_never_sent() -> None:
    bus = EventBus()
    rng = random.Random(1)
    conn = WsConnection(URL, {}, provider_id="p9", chain="c", bus=bus, policy=WsPolicy(), rng=rng)
    with pytest.raises(UpstreamNetworkError, match="not connected") as caught:
        await conn.request("eth_chainId", b"[]")
    assert caught.value.never_sent is True
    assert conn.statistics().state == "idle"


# --- the service: events and timing -------------------------------------------


async def test_stable_after_stable_after_s(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        assert h.conn.state is WsState.CONNECTED
        await h.conn_events.wait_for(WsStable)
        assert h.conn.state is WsState.STABLE
        stats = h.conn.statistics()
    assert h.conn_events.normalised() == [(0.0, WsConnected("p1", "*")), (5.0, WsStable("p1"))]
    assert stats.connection_id is not None and stats.connection_id.startswith("p1#")


async def test_reconnect_backoff_schedule_and_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = WsPolicy()
    async with harness(policy, seed=7) as h:
        await trio.sleep(1.0)  # not yet stable
        h.fake.refuse = True
        h.fake.drop()
        await h.conn_events.wait_for(WsReconnecting, 3)
        h.fake.refuse = False
        await h.conn_events.wait_for(WsConnected, 2)
        stats = h.conn.statistics()

    rng = random.Random(7)
    d = [policy.backoff().delay(attempt, rng) for attempt in range(3)]
    for delay, raw in zip(d, [0.5, 1.0, 2.0], strict=True):
        assert raw * 0.8 <= delay <= raw  # jitter only shortens
    t1 = 1.0 + d[0]
    t2 = t1 + d[1]
    t3 = t2 + d[2]
    assert h.conn_events.normalised() == [
        (0.0, WsConnected("p1", "*")),
        (1.0, WsDisconnected("p1", LOST)),
        (1.0, WsReconnecting("p1", 1, d[0])),
        (t1, WsError("p1", REFUSED)),
        (t1, WsReconnecting("p1", 2, d[1])),
        (t2, WsError("p1", REFUSED)),
        (t2, WsReconnecting("p1", 3, d[2])),
        (t3, WsConnected("p1", "*")),
    ]
    assert (stats.connects, stats.reconnects, stats.last_error) == (2, 3, REFUSED)
    ids = [e.connection_id for _, e in h.conn_events.of(WsConnected)]
    assert len(set(ids)) == 2


async def test_backoff_resets_after_a_stable_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = WsPolicy(reconnect_jitter=0.0)  # exact raw delays: 0.5, 1, 2, ...
    async with harness(policy) as h:
        h.fake.drop()  # unstable: attempt 1
        await h.conn_events.wait_for(WsConnected, 2)  # t=0.5
        h.fake.drop()  # unstable again: attempt 2
        await h.conn_events.wait_for(WsConnected, 3)  # t=1.5
        await h.conn_events.wait_for(WsStable)  # t=6.5
        h.fake.drop()  # after a stable link: attempt 1 again
        await h.conn_events.wait_for(WsConnected, 4)
    assert [(t, e.attempt, e.delay_s) for t, e in h.conn_events.of(WsReconnecting)] == [
        (0.0, 1, 0.5),
        (0.5, 2, 1.0),
        (6.5, 1, 0.5),
    ]
    assert [t for t, _ in h.conn_events.of(WsConnected)] == [0.0, 0.5, 1.5, 7.0]


async def test_backoff_is_capped(autojump_clock: trio.testing.MockClock) -> None:
    policy = WsPolicy(reconnect_jitter=0.0, reconnect_cap_s=3.0)
    async with harness(policy) as h:
        h.fake.refuse = True
        h.fake.drop()
        await h.conn_events.wait_for(WsReconnecting, 5)
    delays = [e.delay_s for _, e in h.conn_events.of(WsReconnecting)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_heartbeat_declares_a_silent_link_dead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = WsPolicy(ping_interval_s=15.0, pong_timeout_s=5.0)
    node = FakeNode()
    async with harness(policy, node=node) as h:
        await trio.sleep(40.0)  # two pings answered
        assert h.conn.statistics().connects == 1
        h.fake.silence()
        started = trio.current_time()
        failed = await outcome(h.conn.request("eth_blockNumber", b"[]"))
        dead_at = trio.current_time()
        h.fake.resume()
        await h.conn_events.wait_for(WsConnected, 2)
    # pings at 15, 30, 45 (unanswered), dead at 45 + 5
    assert (started, dead_at) == (40.0, 50.0)
    assert isinstance(failed, UpstreamNetworkError)
    assert "no pong within 5 s" in failed.message
    assert (50.0, WsDisconnected("p1", "no pong within 5 s")) in h.conn_events.events


async def test_heartbeat_dead_at_exactly_interval_plus_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = WsPolicy(ping_interval_s=15.0, pong_timeout_s=5.0)
    async with harness(policy) as h:
        h.fake.silence()
        await h.conn_events.wait_for(WsDisconnected)
    assert h.conn_events.of(WsDisconnected) == [(20.0, WsDisconnected("p1", "no pong within 5 s"))]


async def test_close_handshake_is_ws_closed(autojump_clock: trio.testing.MockClock) -> None:
    node = FakeNode()
    node.fault = Fault.HANG
    async with harness(node=node) as h:
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                failed = await outcome(h.conn.request("eth_call", b"[]"))
                assert isinstance(failed, UpstreamNetworkError)
                assert "closed 1012 (restarting)" in failed.message

            nursery.start_soon(call)
            await trio.sleep(1.0)
            h.fake.close(1012, "restarting")
        await h.conn_events.wait_for(WsConnected, 2)
    assert (1.0, WsClosed("p1", 1012, "restarting")) in h.conn_events.events


async def test_message_too_big_closes_with_1009(autojump_clock: trio.testing.MockClock) -> None:
    async with harness(WsPolicy(max_message_bytes=100)) as h:
        failed = await outcome(h.conn.request("eth_getBlockByNumber", b'["latest",false]'))
        await h.conn_events.wait_for(WsClosed)
    assert isinstance(failed, UpstreamNetworkError)
    [(_, closed)] = h.conn_events.of(WsClosed)
    assert closed.code == 1009


async def test_rejected_handshake_and_connect_timeout_are_ws_errors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = WsPolicy(reconnect_jitter=0.0, connect_timeout_s=10.0)
    async with harness(policy) as h:
        h.fake.reject_status = 503
        h.fake.drop()
        await h.conn_events.wait_for(WsError, 1)
        h.fake.reject_status = None
        h.fake.connect_delay_s = 60.0
        await h.conn_events.wait_for(WsError, 2)
    assert h.conn_events.of(WsError) == [
        (0.5, WsError("p1", "handshake rejected: HTTP 503")),
        (11.5, WsError("p1", "connect timed out after 10 s")),
    ]


async def test_a_crash_inside_the_link_is_contained(autojump_clock: trio.testing.MockClock) -> None:
    crashes = 0

    def crashing_once(fake: FakeWsNode) -> Any:
        async def connect(nursery: trio.Nursery, *args: Any) -> Dialed:
            nonlocal crashes
            dialed = await fake.connect(nursery, *args)
            if crashes == 0:
                crashes += 1

                async def boom() -> str:
                    raise RuntimeError("boom")

                dialed.ws.get_message = boom  # as if trio-websocket failed
            return dialed

        return connect

    async with harness(wrap=crashing_once) as h:
        await h.conn_events.wait_for(WsConnected, 2)
        assert await h.conn.request("eth_chainId", b"[]") == (b'"0x7a69"', 0)
    assert h.conn_events.of(WsDisconnected) == [(0.0, WsDisconnected("p1", "RuntimeError: boom"))]


async def test_shutdown_fails_pending_and_stops(autojump_clock: trio.testing.MockClock) -> None:
    node = FakeNode()
    node.fault = Fault.HANG
    failed: list[Any] = []
    async with open_fake_ws_node(node) as fake:
        bus = EventBus()
        policy = WsPolicy()
        conn = WsConnection(
            URL,
            {},
            provider_id="p1",
            chain="c",
            bus=bus,
            policy=policy,
            rng=random.Random(1),
            connect=fake.connect,
        )
        async with trio.open_nursery() as outer:
            outer.start_soon(_collect, conn, failed)
            async with trio.open_nursery() as service:
                await service.start(conn.run)
                await trio.sleep(1.0)
                service.cancel_scope.cancel()
        assert conn.state is WsState.STOPPED
        assert not conn.connected
    [exc] = failed
    assert isinstance(exc, UpstreamNetworkError)
    assert "connection stopped" in exc.message


async def _collect(conn: WsConnection, into: list[Any]) -> None:
    await conn.wait_connected()
    into.append(await outcome(conn.request("eth_call", b"[]")))


# --- subscriptions ------------------------------------------------------------


async def test_notifications_reach_the_bus_as_raw_bytes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with harness() as h:
        upstream_id = await h.conn.subscribe(NEW_HEADS)
        assert h.conn.statistics().subscriptions == 1
        await trio.sleep(1.0)
        heads = [h.fake.emit_head() for _ in range(3)]
        await h.subs_events.wait_for(Notification, 3)
        stats = h.conn.statistics()
    assert h.subs_events.events[0] == (0.0, SubscriptionConfirmed("p1", upstream_id, NEW_HEADS))
    notes = [e for _, e in h.subs_events.of(Notification)]
    assert [n.payload for n in notes] == [msgspec.json.encode(head) for head in heads]
    assert all(n.upstream_id == upstream_id and n.received_at == 1.0 for n in notes)
    assert stats.notifications == 3


async def test_unsubscribe_true_then_false(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        upstream_id = await h.conn.subscribe(b'["logs",{}]')
        assert await h.conn.unsubscribe(upstream_id) is True
        assert await h.conn.unsubscribe(upstream_id) is False
        assert h.conn.statistics().subscriptions == 0
        assert h.fake.subscriptions == 0


async def test_subscriptions_die_with_the_link(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        await h.conn.subscribe(NEW_HEADS)
        h.fake.drop()
        await h.conn_events.wait_for(WsConnected, 2)
        assert h.conn.statistics().subscriptions == 0
        h.fake.emit_head()
        await trio.testing.wait_all_tasks_blocked()
    assert h.subs_events.of(Notification) == []  # no automatic re-subscribe


async def test_bad_subscription_is_an_rpc_error(autojump_clock: trio.testing.MockClock) -> None:
    async with harness() as h:
        with pytest.raises(UpstreamRpcError) as caught:
            await h.conn.subscribe(b'["bogus"]')
    assert caught.value.rpc_code == -32602
    assert h.subs_events.events == []


# --- the pure parts -----------------------------------------------------------


def test_parse_frame() -> None:
    assert parse_frame(b'{"jsonrpc":"2.0","id":7,"result":"0x1"}') == Reply(7, b'"0x1"')
    assert parse_frame(b'{"id":7,"error":{"code":1}}') == Reply(7, b"")
    push = b'{"method":"eth_subscription","params":{"subscription":"0xab","result": {"a" : 1}}}'
    assert parse_frame(push) == Push("0xab", b'{"a" : 1}')  # the very bytes
    stray = b'{"id":null,"error":{"code":-32600,"message":"Invalid request"}}'
    assert parse_frame(stray) == StrayError(b'{"code":-32600,"message":"Invalid request"}', -32600)
    for junk in [
        b"nope",
        b"[1]",
        b'{"id":"x","result":1}',
        b'{"id":true,"result":1}',
        b'{"method":"other"}',
        b'{"method":"eth_subscription","params":{"x":1}}',
    ]:
        assert isinstance(parse_frame(junk), Junk), junk


def test_state_table() -> None:
    assert check_transition(WsState.IDLE, WsState.CONNECTING) is WsState.CONNECTING
    assert check_transition(WsState.STOPPED, WsState.CONNECTING) is WsState.CONNECTING
    with pytest.raises(IllegalTransition):
        check_transition(WsState.BACKOFF, WsState.STABLE)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="ping_interval_s"):
        WsPolicy(ping_interval_s=0)
    with pytest.raises(ValueError, match="base_s"):
        WsPolicy(reconnect_base_s=60.0)
    assert msgspec.convert({"max_pending": 8}, WsPolicy).max_pending == 8
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"max_pendingg": 8}, WsPolicy)
