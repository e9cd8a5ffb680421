"""Consistency through the dispatcher and the gateway, on fake nodes and virtual time.

Heads are fed with ``chain.observe_head`` (the heads tracker's job in the daemon).
"""

from __future__ import annotations

import trio
import trio.testing

from lasso.callmeta import CallMeta
from lasso.chain import ChainRuntime
from lasso.core.jsonrpc import Call
from lasso.core.router import Strategy
from lasso.core.routes import RouteSpec
from lasso.dispatch import Outcome, dispatch
from lasso.gateway import Gateway
from tests.conftest import FakeFleet

TX = "0x" + "ab" * 32
UNKNOWN_TX = "0x" + "cd" * 32


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


def heads(chain: ChainRuntime, fleet: FakeFleet, **heights: int) -> None:
    """Set each node's head and report it, as the heads tracker would."""
    for pid, height in heights.items():
        fleet.nodes[pid].head = height
        chain.observe_head(pid, height, f"0x{height:064x}", None, trio.current_time())


async def call(
    chain: ChainRuntime, method: str, params: bytes, *, hedge_after_s: float | None = None
) -> tuple[bytes, Outcome]:
    # Planned without the request's block (params "[]"): the lagging p1 stays first, as
    # when no provider is known to have the block yet, so the answer side is what is tested.
    plan = chain.plan(
        method, trio.current_time(), strategy=Strategy.PRIORITY, provider=None, params=b"[]"
    )
    outcome = Outcome()
    request = Call(method, params, b"1")
    return await dispatch(chain, request, plan, outcome, hedge_after_s=hedge_after_s), outcome


async def answer(
    gateway: Gateway, method: str, params: bytes, provider: str | None = None
) -> bytes:
    route = RouteSpec(chain="testnet", strategy=Strategy.PRIORITY, provider=provider)
    target = gateway.resolve(route, "/rpc/testnet")
    return await gateway.answer_call(
        target, Call(method, params, b"1"), CallMeta.start(target, method)
    )


def behind(outcome: Outcome) -> list[str]:
    return [a.provider for a in outcome.attempts if a.category == "behind"]


# -- 3. empty is not an answer from a node that is behind ------------------------------------


async def test_a_null_block_from_a_lagging_provider_is_retried_on_one_at_the_block(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=98, p2=100, p3=100)
    result, outcome = await call(chain, "eth_getBlockByNumber", b'["0x64",false]')
    assert b'"number":"0x64"' in result
    assert outcome.provider == "p2"
    assert behind(outcome) == ["p1"]
    p1 = chain.providers["p1"].channel("http")
    assert p1.breaker.statistics(trio.current_time()).consecutive_failures == 0


async def test_a_null_receipt_from_a_provider_behind_the_head_is_retried(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    for node in fleet.nodes.values():
        node.txs[TX] = 100
    heads(chain, fleet, p1=99, p2=100, p3=100)
    result, outcome = await call(chain, "eth_getTransactionReceipt", b'["%s"]' % TX.encode())
    assert b'"blockNumber":"0x64"' in result
    assert (outcome.provider, behind(outcome)) == ("p2", ["p1"])


async def test_empty_logs_from_a_provider_below_the_range_are_retried(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    for node in fleet.nodes.values():
        node.add_log(100, {"address": "0x01", "blockNumber": "0x64"})
    heads(chain, fleet, p1=99, p2=99, p3=100)
    result, outcome = await call(chain, "eth_getLogs", b'[{"fromBlock":"0x63","toBlock":"0x64"}]')
    assert result == b'[{"address":"0x01","blockNumber":"0x64"}]'
    # p2 is known to be below the range: never asked; p3 is at it.
    assert (outcome.provider, behind(outcome)) == ("p3", ["p1"])
    assert fleet.nodes["p2"].calls == []


async def test_the_hedged_path_holds_an_empty_answer_too(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=98, p2=100, p3=100)
    fleet.nodes["p2"].delay_s = 0.05
    start = trio.current_time()
    result, outcome = await call(
        chain, "eth_getBlockByNumber", b'["0x64",false]', hedge_after_s=0.2
    )
    assert b'"number":"0x64"' in result
    assert (outcome.provider, behind(outcome)) == ("p2", ["p1"])
    assert trio.current_time() - start == 0.05  # the held answer started p2 at once


async def test_a_null_for_an_existing_block_from_a_restarted_provider_is_retried(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # p1 (first in line) last reported 100, then restarted from genesis: its record is
    # stale, and its "no such block" for 100 is not an answer (the block exists).
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    fleet.nodes["p1"].head = 0
    start = trio.current_time()
    result, outcome = await call(chain, "eth_getBlockByNumber", b'["0x64",false]')
    assert b'"number":"0x64"' in result
    assert (outcome.provider, behind(outcome)) == ("p2", ["p1"])
    assert trio.current_time() == start  # no wait: p2 is at the block
    assert len(fleet.nodes["p1"].calls) == 1  # stale for the dispatch: never asked again
    reply = await answer(gateway, "eth_getBlockByNumber", b'["0x63",false]')
    assert b'"number":"0x63"' in reply  # through the gateway too, below the head


async def test_a_null_from_every_provider_for_an_existing_block_is_returned_once_all_said_so(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    for node in fleet.nodes.values():
        node.head = 0  # a chain reset nobody has reported yet
    start = trio.current_time()
    result, outcome = await call(chain, "eth_getBlockByNumber", b'["0x64",false]')
    assert result == b"null"
    assert trio.current_time() == start  # each asked once; no head report can help
    assert sorted(behind(outcome)) == ["p1", "p2", "p3"]
    assert [len(fleet.nodes[p].calls) for p in ("p1", "p2", "p3")] == [1, 1, 1]


async def test_a_route_pinned_to_a_provider_that_lost_a_block_gets_its_null_at_once(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    fleet.nodes["p2"].head = 0
    start = trio.current_time()
    reply = await answer(gateway, "eth_getBlockByNumber", b'["0x64",false]', provider="p2")
    assert reply == b'{"jsonrpc":"2.0","id":1,"result":null}'  # its own view, not waited on
    assert trio.current_time() == start


async def test_a_genuine_null_is_returned_unchanged_byte_for_byte(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    reply = await answer(gateway, "eth_getTransactionReceipt", b'["%s"]' % UNKNOWN_TX.encode())
    assert reply == b'{"jsonrpc":"2.0","id":1,"result":null}'
    assert [len(fleet.nodes[p].calls) for p in ("p1", "p2", "p3")] == [1, 0, 0]


async def test_a_block_not_mined_yet_is_null_at_once(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=99, p2=100, p3=100)
    start = trio.current_time()
    result, outcome = await call(chain, "eth_getBlockByNumber", b'["0x65",false]')
    assert (result, outcome.provider, trio.current_time()) == (b"null", "p1", start)


async def test_without_chain_state_nothing_changes(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].head = 98
    result, outcome = await call(chain_of(gateway), "eth_getBlockByNumber", b'["0x64",false]')
    assert (result, outcome.provider) == (b"null", "p1")


# -- 2. read-your-head: wait for a provider to reach the block --------------------------------


async def test_a_delivered_head_is_waited_for_within_the_deadline(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    chain.floor.delivered({"number": "0x65"})  # a client was sent newHeads 101
    start = trio.current_time()
    async with trio.open_nursery() as nursery:

        async def p2_reaches_101() -> None:
            await trio.sleep(0.2)
            heads(chain, fleet, p2=101)

        nursery.start_soon(p2_reaches_101)
        result, outcome = await call(chain, "eth_getBlockByNumber", b'["0x65",false]')
    assert b'"number":"0x65"' in result
    assert (outcome.provider, behind(outcome)) == ("p2", ["p1"])
    assert trio.current_time() - start == 0.2
    assert fleet.nodes["p3"].calls == []


async def test_the_held_null_is_the_answer_at_the_deadline(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    chain.floor.delivered({"number": "0x65"})
    start = trio.current_time()
    result, outcome = await call(chain, "eth_getBlockByNumber", b'["0x65",false]')
    assert result == b"null"
    assert trio.current_time() - start == 1.99  # the 2 s deadline less the answer margin
    assert behind(outcome) == ["p1"]


# -- 1. monotonic head -------------------------------------------------------------------------


async def test_block_number_never_goes_below_what_was_answered(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    assert await answer(gateway, "eth_blockNumber", b"[]") == (
        b'{"jsonrpc":"2.0","id":1,"result":"0x64"}'
    )
    fleet.nodes["p1"].head = 98  # p1 serves an older head now (a lagging replica)
    assert await answer(gateway, "eth_blockNumber", b"[]") == (
        b'{"jsonrpc":"2.0","id":1,"result":"0x64"}'
    )
    fleet.nodes["p1"].head = 101
    assert await answer(gateway, "eth_blockNumber", b"[]") == (
        b'{"jsonrpc":"2.0","id":1,"result":"0x65"}'
    )
    # A route pinned to one provider gets that provider's own view.
    fleet.nodes["p1"].head = 98
    assert await answer(gateway, "eth_blockNumber", b"[]", provider="p1") == (
        b'{"jsonrpc":"2.0","id":1,"result":"0x62"}'
    )


async def test_a_latest_block_below_the_floor_is_fetched_again_by_number(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    heads(chain, fleet, p1=100, p2=100, p3=100)
    first = await answer(gateway, "eth_getBlockByNumber", b'["latest",false]')
    assert b'"number":"0x64"' in first
    await trio.sleep(1)
    heads(chain, fleet, p1=98)
    again = await answer(gateway, "eth_getBlockByNumber", b'["latest",false]')
    assert again == first  # block 100 by number, from p2: never block 98
    assert fleet.nodes["p1"].calls[-2:] == ["eth_getBlockByNumber", "eth_getBlockByNumber"]


async def test_a_latest_block_nobody_can_serve_at_the_floor_is_not_invented(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    chain.floor.delivered({"number": "0x70"})  # a head no provider can serve
    reply = await answer(gateway, "eth_getBlockByNumber", b'["latest",false]')
    assert b'"number":"0x64"' in reply
