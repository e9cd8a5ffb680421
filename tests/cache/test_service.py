"""The response cache through the gateway, on fake nodes and virtual time: coalescing, hits,
id splicing, errors, cancellation, reorg eviction, the size bound and the shared tier."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import msgspec
import pytest
import trio
import trio.testing

from lasso.callmeta import CallMeta
from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.config import Settings, parse_settings
from lasso.core.jsonrpc import Call
from lasso.core.router import Strategy
from lasso.core.routes import RouteSpec
from lasso.daemon import open_gateway
from lasso.gateway import Gateway, Target
from tests.conftest import SETTINGS, FakeFleet

BLOCK_16 = b'["0x10",false]'


def settings_with(cache: str) -> Settings:
    return parse_settings(SETTINGS + "\n[cache]\n" + cache + "\n", env={})


@pytest.fixture
async def gateway(fleet: FakeFleet) -> AsyncIterator[Gateway]:
    settings = settings_with("finality_depth_blocks = 64")
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = chain_of(gw)
        for pid in ("p1", "p2", "p3"):  # head 100: blocks up to 36 are final
            chain.observe_head(pid, 100, fleet_hash(100), fleet_hash(99), trio.current_time())
        yield gw


def fleet_hash(number: int) -> str:
    from tests.support.fakes import _block_hash

    return _block_hash(number)


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


def target(gateway: Gateway, *, provider: str | None = None, no_cache: bool = False) -> Target:
    route = RouteSpec(chain="testnet", strategy=Strategy.PRIORITY, provider=provider)
    found = gateway.resolve(route, "/rpc/testnet")
    return msgspec.structs.replace(found, no_cache=no_cache)


async def ask(
    gateway: Gateway, method: str, params: bytes, rid: bytes = b"1", **kw: object
) -> tuple[bytes, CallMeta]:
    where = target(gateway, **kw)  # type: ignore[arg-type]
    meta = CallMeta.start(where, method)
    return await gateway.answer_call(where, Call(method, params, rid), meta), meta


def upstream_calls(fleet: FakeFleet, method: str) -> int:
    return sum(node.calls.count(method) for node in fleet.nodes.values())


async def test_100_concurrent_identical_misses_make_one_upstream_call(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.delay_s = 0.5
    answers: dict[int, bytes] = {}
    metas: list[CallMeta] = []

    async def one(n: int) -> None:
        answers[n], meta = await ask(gateway, "eth_getBlockByNumber", BLOCK_16, b"%d" % n)
        metas.append(meta)

    async with trio.open_nursery() as nursery:
        for n in range(100):
            nursery.start_soon(one, n)
    assert upstream_calls(fleet, "eth_getBlockByNumber") == 1
    results = {a.split(b',"result":', 1)[1] for a in answers.values()}
    assert len(results) == 1
    assert all(a.startswith(b'{"jsonrpc":"2.0","id":%d,' % n) for n, a in answers.items())
    assert {m.cache for m in metas} == {"miss"}
    # and the next one is a hit, with no upstream call
    again, meta = await ask(gateway, "eth_getBlockByNumber", b'[ "0x10" , false ]', b"7")
    assert meta.cache == "hit"
    assert again == answers[7]
    assert upstream_calls(fleet, "eth_getBlockByNumber") == 1
    stats = {(m.chain, m.method): m for m in gateway.cache.statistics().methods}
    counts = stats["testnet", "eth_getBlockByNumber"]
    assert (counts.hits, counts.misses, counts.coalesced, counts.stored) == (1, 100, 99, 1)


@pytest.mark.parametrize("rid", [b'"a-string"', b"42", b"123456789012345678901234567890", b"null"])
async def test_a_hit_keeps_each_clients_id(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock, rid: bytes
) -> None:
    first, _ = await ask(gateway, "eth_getBlockByNumber", BLOCK_16, b'"first"')
    hit, meta = await ask(gateway, "eth_getBlockByNumber", BLOCK_16, rid)
    assert meta.cache == "hit"
    assert hit == first.replace(b'"id":"first"', b'"id":' + rid)


async def test_no_cache_and_pinned_routes_bypass(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    await ask(gateway, "eth_getBlockByNumber", BLOCK_16)
    _, meta = await ask(gateway, "eth_getBlockByNumber", BLOCK_16, no_cache=True)
    assert meta.cache == "bypass"
    _, meta = await ask(gateway, "eth_getBlockByNumber", BLOCK_16, provider="p2")
    assert meta.cache == "bypass"
    assert upstream_calls(fleet, "eth_getBlockByNumber") == 3
    assert meta.to_dict("r")["cache"] == "bypass"


async def test_never_cached_answers(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    unknown_tx = b'["0x' + b"cd" * 32 + b'"]'
    for _ in range(2):  # null: a transaction not (yet) mined
        reply, meta = await ask(gateway, "eth_getTransactionReceipt", unknown_tx)
        assert reply.endswith(b'"result":null}') and meta.cache == "miss"
    for _ in range(2):  # above the final block
        _, meta = await ask(gateway, "eth_getBlockByNumber", b'["0x60",false]')
    for _ in range(2):  # latest, with [cache] latest off (the default)
        _, meta = await ask(gateway, "eth_blockNumber", b"[]")
        assert meta.cache is None
    assert upstream_calls(fleet, "eth_getTransactionReceipt") == 2
    assert upstream_calls(fleet, "eth_getBlockByNumber") == 2
    assert upstream_calls(fleet, "eth_blockNumber") == 2


async def test_an_error_is_shared_by_the_waiters_and_not_kept(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.delay_s = 0.5
        node.fault = Fault.METHOD_NOT_FOUND
    replies: list[bytes] = []

    async def one() -> None:
        replies.append((await ask(gateway, "eth_getBlockByNumber", BLOCK_16))[0])

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(one)
    assert len(set(replies)) == 1 and b'"error"' in replies[0]
    failing = upstream_calls(fleet, "eth_getBlockByNumber")
    assert failing <= 3  # one flight (its retries on the other providers), not ten
    for node in fleet.nodes.values():
        node.fault = None
    reply, meta = await ask(gateway, "eth_getBlockByNumber", BLOCK_16)
    assert b'"result"' in reply and meta.cache == "miss"


async def test_the_first_client_leaving_does_not_cancel_the_others(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.delay_s = 1.0
    got: list[bytes] = []

    async def leaves(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await ask(gateway, "eth_getBlockByNumber", BLOCK_16)

    async def stays() -> None:
        got.append((await ask(gateway, "eth_getBlockByNumber", BLOCK_16))[0])

    async with trio.open_nursery() as nursery:
        leader = await nursery.start(leaves)
        await trio.sleep(0.1)
        nursery.start_soon(stays)  # joins the flight the leader started
        await trio.sleep(0.1)
        leader.cancel()  # the first client hangs up
    assert len(got) == 1 and b'"result"' in got[0]
    assert upstream_calls(fleet, "eth_getBlockByNumber") == 1


async def test_the_upstream_call_is_cancelled_when_every_client_left(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.delay_s = 10.0
    with trio.move_on_after(1):
        await ask(gateway, "eth_getBlockByNumber", BLOCK_16)
    await trio.sleep(0.01)
    assert gateway.cache.statistics().entries == 0
    for node in fleet.nodes.values():
        node.delay_s = 0
    _, meta = await ask(gateway, "eth_getBlockByNumber", BLOCK_16)
    assert meta.cache == "miss"  # a new flight, not the abandoned one
    assert upstream_calls(fleet, "eth_getBlockByNumber") == 2


async def test_a_reorg_evicts_the_entries_about_replaced_blocks(
    fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    settings = settings_with("finality_depth_blocks = 2")
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = chain_of(gw)
        now = trio.current_time()
        for pid in ("p1", "p2", "p3"):
            chain.observe_head(pid, 100, fleet_hash(100), fleet_hash(99), now)
        before, _ = await ask(gw, "eth_getBlockByNumber", b'["0x62",false]')  # 98: final
        await ask(gw, "eth_getBlockByNumber", b'["0x5",false]')
        assert gw.cache.statistics().entries == 2
        for node in fleet.nodes.values():
            node.reorg(3)  # blocks 98, 99 and 100 replaced
        node = fleet.nodes["p1"]
        chain.observe_head("p1", 100, node.block_hash(100), node.block_hash(99), now)
        assert gw.cache.statistics().entries == 1  # block 5 stays, block 98 went
        after, meta = await ask(gw, "eth_getBlockByNumber", b'["0x62",false]')
        assert meta.cache == "miss" and after != before
        assert node.block_hash(98).encode() in after
        again, meta = await ask(gw, "eth_getBlockByNumber", b'["0x62",false]')
        assert (again, meta.cache) == (after, "hit")


async def test_the_size_bound_evicts_the_least_recently_used(
    fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    settings = settings_with("max_bytes = 1000")
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = chain_of(gw)
        chain.observe_head("p1", 100, fleet_hash(100), fleet_hash(99), trio.current_time())
        for n in range(1, 10):
            await ask(gw, "eth_getBlockByNumber", b'["0x%x",false]' % n)
        stats = gw.cache.statistics()
        assert 0 < stats.bytes <= 1000
        assert stats.entries < 9
        assert sum(m.evictions for m in stats.methods) == 9 - stats.entries
        _, meta = await ask(gw, "eth_getBlockByNumber", b'["0x9",false]')
        assert meta.cache == "hit"  # the newest stayed


async def test_overrides_and_disabling(
    fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    settings = settings_with(
        'methods = { eth_getBlockByNumber = "never", web3_clientVersion = "2000ms" }'
    )
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = chain_of(gw)
        chain.observe_head("p1", 100, fleet_hash(100), fleet_hash(99), trio.current_time())
        for _ in range(2):
            await ask(gw, "eth_getBlockByNumber", BLOCK_16)
            await ask(gw, "web3_clientVersion", b"[]")
        assert upstream_calls(fleet, "eth_getBlockByNumber") == 2
        assert upstream_calls(fleet, "web3_clientVersion") == 1
        await trio.sleep(2.5)  # the TTL ran out
        await ask(gw, "web3_clientVersion", b"[]")
        assert upstream_calls(fleet, "web3_clientVersion") == 2
    async with open_gateway(
        settings_with("enabled = false"), rng=random.Random(7), transports=fleet.transport
    ) as gw:
        _, meta = await ask(gw, "net_version", b"[]")
        _, meta = await ask(gw, "net_version", b"[]")
        assert meta.cache is None
        assert upstream_calls(fleet, "net_version") == 2


async def test_latest_is_kept_until_a_new_block(
    fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    settings = settings_with("latest = true")
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = chain_of(gw)
        chain.observe_head("p1", 100, fleet_hash(100), fleet_hash(99), trio.current_time())
        first, _ = await ask(gw, "eth_blockNumber", b"[]")
        second, meta = await ask(gw, "eth_blockNumber", b"[]")
        assert (second, meta.cache) == (first, "hit")
        fleet.nodes["p1"].head = 101
        chain.observe_head("p1", 101, fleet_hash(101), fleet_hash(100), trio.current_time())
        third, meta = await ask(gw, "eth_blockNumber", b"[]")
        assert meta.cache == "miss" and third.endswith(b'"0x65"}')
        await trio.sleep(1.5)  # a block time later with no head report: expired too
        _, meta = await ask(gw, "eth_blockNumber", b"[]")
        assert meta.cache == "miss"


class DictStore:
    """A SharedStore in a dict: the protocol, in-process (the redis helper's is the real one)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    @property
    def available(self) -> bool:
        return True

    async def get_bytes(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def set_bytes(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.data[key] = value

    async def take_tokens(self, key: str, *, rate: float, burst: int, cost: int) -> float | None:
        return None


async def test_the_shared_store_serves_final_answers_to_another_instance(
    autojump_clock: trio.testing.MockClock,
) -> None:
    shared = DictStore()
    fleets = [FakeFleet(), FakeFleet()]
    replies, caches = [], []
    settings = settings_with("finality_depth_blocks = 64")
    for fleet in fleets:
        async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
            gw.shared = shared
            chain = chain_of(gw)
            chain.observe_head("p1", 100, fleet_hash(100), fleet_hash(99), trio.current_time())
            reply, meta = await ask(gw, "eth_getBlockByNumber", BLOCK_16)
            replies.append(reply)
            caches.append(meta.cache)
            await trio.sleep(0.01)  # the write to the shared store follows the answer
            # a receipt in a block that is not final stays local
            await ask(gw, "eth_getBlockByNumber", b'["0x60",false]')
    assert replies[0] == replies[1]
    assert caches == ["miss", "hit"]  # the second instance's answer came from the store
    assert upstream_calls(fleets[0], "eth_getBlockByNumber") == 2
    assert upstream_calls(fleets[1], "eth_getBlockByNumber") == 1  # block 16 came shared
    assert len(shared.data) == 1


class HangingStore(DictStore):
    async def get_bytes(self, key: str) -> bytes | None:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_shared_store_that_hangs_costs_a_miss_not_the_call(
    fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    settings = settings_with("finality_depth_blocks = 64")
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        gw.shared = HangingStore()
        chain_of(gw).observe_head("p1", 100, fleet_hash(100), fleet_hash(99), 0.0)
        started = trio.current_time()
        reply, meta = await ask(gw, "eth_getBlockByNumber", BLOCK_16)
        assert b'"result"' in reply and meta.cache == "miss"
        assert trio.current_time() - started < 1
