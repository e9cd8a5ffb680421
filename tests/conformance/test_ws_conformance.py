"""One conformance suite for the upstream WebSocket: real anvil and the fake.

The same checks run through :class:`~lasso.upstream.ws.WsConnection` against

    anvil   a real anvil node (a one-node devnet), over its ws:// endpoint
    fake    :class:`~tests.support.fake_ws.FakeWsNode` over memory streams

A fake that fails a check the real node passes is a bug in the fake: tests
written on the fake would then assert behaviour no provider has.

Two facts about anvil 1.7.1 over WebSocket that these checks pin down:

* an unknown method is answered with -32602 "data did not match any variant
  of untagged enum EthRpcCall" (classified deterministic), not the -32601
  (capability) anvil sends over HTTP for the same call;
* a newHeads notification carries the full block header with exactly the
  fields *and values* of ``eth_getBlockByNumber(n, false)``, including
  ``transactions: []``, ``uncles``, ``size`` and ``totalDifficulty``.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import trio

from lasso.devnet import DEV_ACCOUNTS, open_devnet
from lasso.errors import UpstreamRpcError
from lasso.pubsub import EventBus, Notification, SubscriptionConfirmed, subs_topic
from lasso.upstream.ws import Connector, WsConnection, WsPolicy
from tests.support.fake_ws import open_fake_ws_node

HANG_GUARD_S = 10.0
QUANTITY = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)\Z")
HASH = re.compile(r"0x[0-9a-f]{64}\Z")
SUB_ID = re.compile(r"0x[0-9a-f]{32}\Z")
CONCURRENT = 50
REAL = (pytest.mark.integration, pytest.mark.slow)
CHAIN = "conformance"


@dataclass
class Target:
    conn: WsConnection
    bus: EventBus
    mine: Callable[[], Awaitable[object]]
    real: bool


@asynccontextmanager
async def running(
    url: str, bus: EventBus, connect: Connector | None
) -> AsyncIterator[WsConnection]:
    conn = WsConnection(
        url,
        {},
        provider_id="under-test",
        chain=CHAIN,
        bus=bus,
        policy=WsPolicy(),
        rng=random.Random(1),
        connect=connect,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        await conn.wait_connected()
        yield conn
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_target(kind: str) -> AsyncIterator[Target]:
    bus = EventBus()
    if kind == "fake":
        async with open_fake_ws_node() as fake, running("ws://fake/", bus, fake.connect) as conn:

            async def emit() -> object:
                return fake.emit_head()

            yield Target(conn, bus, emit, real=False)
        return
    async with (
        open_devnet(nodes=1, block_time_s=None) as devnet,
        running(devnet.nodes[0].ws_url, bus, None) as conn,
    ):
        yield Target(conn, bus, devnet.mine, real=True)


def decode(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


# --- the checks: each takes a Target and raises AssertionError on a mismatch ---


async def check_chain_id(target: Target) -> None:
    result, latency_us = await target.conn.request("eth_chainId", b"[]")
    assert result == b'"0x7a69"'
    assert latency_us > 0 if target.real else latency_us >= 0


async def check_block_number_is_hex(target: Target) -> None:
    result, _ = await target.conn.request("eth_blockNumber", b"[]")
    assert QUANTITY.match(decode(result)), result


async def check_balance(target: Target) -> None:
    params = b'["%b","latest"]' % DEV_ACCOUNTS[0].encode()
    result, _ = await target.conn.request("eth_getBalance", params)
    assert int(decode(result), 16) > 0


async def check_latest_block(target: Target) -> None:
    result, _ = await target.conn.request("eth_getBlockByNumber", b'["latest",false]')
    block = decode(result)
    assert QUANTITY.match(block["number"]), block
    assert HASH.match(block["hash"]), block


async def check_unknown_method(target: Target) -> None:
    with pytest.raises(UpstreamRpcError) as caught:
        await target.conn.request("lasso_noSuchMethod", b"[]")
    error = caught.value
    # -32601 over HTTP; over WebSocket anvil says -32602, which we still classify by its
    # message as "method not found": a capability, so the call fails over.
    assert (error.rpc_code, error.category) == (-32602, "capability")
    assert "did not match any variant" in error.message
    assert error.provider_id == "under-test"


async def check_an_unreadable_request_alone_in_flight_gets_its_answer(target: Target) -> None:
    # anvil answers params it cannot read (over 128 levels) with -32600 and a null id;
    # with one request in flight that answer is its own (lasso.upstream.ws.pending).
    with pytest.raises(UpstreamRpcError) as caught:
        await target.conn.request("eth_blockNumber", b"[" * 200 + b"]" * 200)
    assert caught.value.raw_error == b'{"code":-32600,"message":"Invalid request"}'
    assert (caught.value.rpc_code, caught.value.category) == (-32600, "deterministic")
    assert target.conn.statistics().unmatched_frames == 0


async def check_unreadable_requests_among_others_fail_over_and_spare_the_rest(
    target: Target,
) -> None:
    # Several in flight: the null-id answer cannot be told apart, so the replay-safe
    # requests waiting are failed as CAPABILITY (tried elsewhere, no breaker penalty);
    # a request answered before it came is untouched.
    outcomes: list[str] = []

    async def one(params: bytes) -> None:
        try:
            await target.conn.request("eth_blockNumber", params)
        except UpstreamRpcError as exc:
            outcomes.append(exc.category)
        else:
            outcomes.append("ok")

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one, b"[" * 200 + b"]" * 200)
    assert set(outcomes) <= {"deterministic", "capability"}
    assert len(outcomes) == 5
    # Every one of the five answers arrives and is accounted for ...
    due = 5 - outcomes.count("deterministic")
    for _ in range(500):  # polled: the answers come from a real node; bounded by the guard
        if target.conn.statistics().unmatched_frames >= due:
            break
        await trio.sleep(0.01)
    # ... so none is pinned on a request sent afterwards: a good one is answered, and
    # a bad one alone in flight gets its own answer again.
    result, _ = await target.conn.request("eth_chainId", b"[]")
    assert result == b'"0x7a69"'
    with pytest.raises(UpstreamRpcError) as caught:
        await target.conn.request("eth_blockNumber", b"[" * 200 + b"]" * 200)
    assert caught.value.category == "deterministic"


async def check_concurrent_answers_are_correlated(target: Target) -> None:
    for _ in range(3):
        await target.mine()
    numbers = [n % 4 for n in range(CONCURRENT)]
    answers: dict[int, Any] = {}

    async def fetch(slot: int) -> None:
        params = b'["%b",false]' % hex(numbers[slot]).encode()
        answers[slot] = decode((await target.conn.request("eth_getBlockByNumber", params))[0])

    async with trio.open_nursery() as nursery:
        for slot in range(CONCURRENT):
            nursery.start_soon(fetch, slot)
    assert [int(answers[s]["number"], 16) for s in range(CONCURRENT)] == numbers
    assert len({answers[s]["hash"] for s in range(CONCURRENT)}) == 4


async def check_new_heads_carry_the_block_fields(target: Target) -> None:
    with target.bus.subscribe(subs_topic(CHAIN)) as events:
        upstream_id = await target.conn.subscribe(b'["newHeads"]')
        assert SUB_ID.match(upstream_id), upstream_id
        assert await events.receive() == SubscriptionConfirmed(
            "under-test", upstream_id, b'["newHeads"]'
        )
        await target.mine()
        note = await events.receive()
    assert isinstance(note, Notification)
    assert note.upstream_id == upstream_id
    head = decode(note.payload)
    params = b'["%b",false]' % head["number"].encode()
    block = decode((await target.conn.request("eth_getBlockByNumber", params))[0])
    assert sorted(head) == sorted(block)
    assert head == block


async def check_unsubscribe_true_then_false(target: Target) -> None:
    upstream_id = await target.conn.subscribe(b'["newHeads"]')
    assert await target.conn.unsubscribe(upstream_id) is True
    assert await target.conn.unsubscribe(upstream_id) is False


async def check_logs_subscription(target: Target) -> None:
    upstream_id = await target.conn.subscribe(b'["logs",{}]')
    assert SUB_ID.match(upstream_id), upstream_id
    assert target.conn.statistics().subscriptions == 1


async def check_unknown_subscription_kind(target: Target) -> None:
    with pytest.raises(UpstreamRpcError) as caught:
        await target.conn.subscribe(b'["bogus"]')
    assert caught.value.rpc_code == -32602
    assert target.conn.statistics().subscriptions == 0


CHECKS: list[Callable[[Target], Awaitable[None]]] = [
    check_chain_id,
    check_block_number_is_hex,
    check_balance,
    check_latest_block,
    check_unknown_method,
    check_an_unreadable_request_alone_in_flight_gets_its_answer,
    check_unreadable_requests_among_others_fail_over_and_spare_the_rest,
    check_concurrent_answers_are_correlated,
    check_new_heads_carry_the_block_fields,
    check_unsubscribe_true_then_false,
    check_logs_subscription,
    check_unknown_subscription_kind,
]
TARGETS = [pytest.param("anvil", marks=REAL), pytest.param("fake")]
#: Checks after which answers arrive that no request waits for any more (counted unmatched).
ANSWERS_NOBODY_WAITS_FOR = {check_unreadable_requests_among_others_fail_over_and_spare_the_rest}


@pytest.mark.parametrize("kind", TARGETS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_ws_conformance(kind: str, check: Callable[[Target], Awaitable[None]]) -> None:
    with trio.fail_after(HANG_GUARD_S):
        async with open_target(kind) as target:
            await check(target)
            if check not in ANSWERS_NOBODY_WAITS_FOR:
                assert target.conn.statistics().unmatched_frames == 0


async def test_the_fake_can_answer_like_other_nodes() -> None:
    """``anvil_ws_errors=False``: -32601 for an unknown method, as geth and most providers."""
    bus = EventBus()
    async with (
        open_fake_ws_node(anvil_ws_errors=False) as fake,
        running("ws://fake/", bus, fake.connect) as conn,
    ):
        with pytest.raises(UpstreamRpcError) as caught:
            await conn.request("lasso_noSuchMethod", b"[]")
    assert (caught.value.rpc_code, caught.value.category) == (-32601, "capability")
