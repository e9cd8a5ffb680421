"""The filter service's shell on a MockClock: feeds started once and released, idle
expiry by the sweeper, a broken feed drops its filters, eth_getFilterLogs forwarded."""

from __future__ import annotations

import json
import random
from typing import Any, cast

import pytest
import trio
import trio.testing

from lasso.config import parse_settings
from lasso.core.jsonrpc import Call
from lasso.core.routes import RouteSpec
from lasso.core.subs import Delivery, SubscriptionRequest
from lasso.errors import FilterError, FilterLimit, InvalidParams, NoProviderAvailable
from lasso.filters.service import FilterService, open_filters
from lasso.gateway import Gateway, Target
from lasso.subscriptions.fanout import Subscriber
from lasso.subscriptions.hub import SubscriptionHub

WS = 'ws_url = "ws://127.0.0.1:9"'


def gateway_for(ws: bool = True, filters: str = "") -> Gateway:
    text = (
        f"{filters}[chains.devnet]\nchain_id = 31337\nproviders = [\n"
        f'{{ id = "a", url = "http://127.0.0.1:9" {", " + WS if ws else ""} }}\n]\n'
    )
    return Gateway(parse_settings(text, env={}), rng=random.Random(0))


class StubStream:
    def __init__(self) -> None:
        self.removed: list[tuple[str, object]] = []

    def remove(self, sub_id: str, client: object | None = None) -> bool:
        self.removed.append((sub_id, client))
        return True


class StubHub:
    def __init__(self) -> None:
        self.acquired: list[tuple[SubscriptionRequest, Subscriber]] = []
        self.pins: list[str | None] = []
        self.streams: list[StubStream] = []
        self.fail: Exception | None = None
        self.gate = trio.Event()
        self.gate.set()

    async def acquire(
        self, target: Target, request: SubscriptionRequest, subscriber: Subscriber, *, client: Any
    ) -> StubStream:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.acquired.append((request, subscriber))
        self.pins.append(target.provider)
        self.streams.append(StubStream())
        return self.streams[-1]


class Rig:
    def __init__(self, gateway: Gateway, hub: StubHub, service: FilterService) -> None:
        self.gateway, self.hub, self.service = gateway, hub, service
        self.target = gateway.resolve(RouteSpec(chain="devnet"), "/rpc/devnet", client="10.1.1.1")
        self.forwarded: list[Call] = []

    async def forward(self, call: Call) -> bytes:
        self.forwarded.append(call)
        return b'["forwarded"]'

    async def call(self, method: str, params: bytes = b"[]") -> bytes:
        return await self.service.handle(self.target, Call(method, params, b"1"), self.forward)


async def open_rig(gateway: Gateway, nursery: trio.Nursery) -> Rig:
    hub = StubHub()
    service = await nursery.start(_serve, gateway, hub)
    return Rig(gateway, hub, service)


async def _serve(
    gateway: Gateway, hub: StubHub, *, task_status: trio.TaskStatus[FilterService]
) -> None:
    async with open_filters(gateway, cast(SubscriptionHub, hub), random.Random(1)) as service:
        task_status.started(service)
        await trio.sleep_forever()


def head(n: int) -> Delivery:
    return Delivery({"hash": f"0x{n:064x}", "number": hex(n)})


async def test_block_filters_share_one_feed_and_expire_when_idle(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await open_rig(gateway_for(filters="[filters]\nidle_timeout_ms = 10_000\n"), nursery)
    first = (await rig.call("eth_newBlockFilter")).strip(b'"').decode()
    second = (await rig.call("eth_newBlockFilter")).strip(b'"').decode()
    assert len(rig.hub.acquired) == 1
    _, subscriber = rig.hub.acquired[0]
    subscriber.deliver(head(1), "")
    subscriber.deliver(head(1), "")  # the same block again (a backfill overlap)
    assert await rig.call("eth_getFilterChanges", b'["%b"]' % first.encode()) == (
        b'["0x' + b"0" * 63 + b'1"]'
    )
    started = trio.current_time()
    await trio.sleep(6)
    assert await rig.call("eth_getFilterChanges", b'["%b"]' % first.encode()) == b"[]"
    await trio.sleep(6)  # `second` was never polled: gone after 10 s; the feed stays
    with pytest.raises(FilterError, match="filter not found"):
        await rig.call("eth_getFilterChanges", b'["%b"]' % second.encode())
    assert rig.hub.streams[0].removed == []
    await trio.sleep(10)  # `first` idle too: the sweeper drops it and releases the feed
    assert rig.service.table.statistics().filters == 0
    assert rig.hub.streams[0].removed == [(subscriber.sub_id, "10.1.1.1")]
    assert trio.current_time() - started == pytest.approx(22)


async def test_a_broken_feed_drops_its_filters(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await open_rig(gateway_for(), nursery)
    fid = await rig.call("eth_newFilter", b"[{}]")
    _, subscriber = rig.hub.acquired[0]
    subscriber.error(-32000, "the subscription missed blocks 0x5..0x200")
    with pytest.raises(FilterError, match="filter not found"):
        await rig.call("eth_getFilterChanges", b"[%b]" % fid)
    assert len(rig.hub.streams[0].removed) == 1


async def test_concurrent_installs_start_the_feed_once_and_a_failed_start_leaves_nothing(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await open_rig(gateway_for(), nursery)
    rig.hub.gate = trio.Event()
    rig.hub.fail = NoProviderAvailable("Could not subscribe upstream: no WebSocket")
    errors: list[Exception] = []

    async def install() -> None:
        try:
            await rig.call("eth_newPendingTransactionFilter")
        except NoProviderAvailable as exc:
            errors.append(exc)

    async with trio.open_nursery() as inner:
        for _ in range(3):
            inner.start_soon(install)
        await trio.testing.wait_all_tasks_blocked()
        rig.hub.gate.set()
    assert len(errors) == 3
    assert rig.service.table.statistics().filters == 0
    rig.hub.fail = None
    assert (await rig.call("eth_newPendingTransactionFilter")).startswith(b'"0x')
    assert len(rig.hub.acquired) == 1


async def test_a_block_filter_whose_stream_cannot_start_is_polled_over_http(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig, node = await open_polled_rig(nursery, head=3, ws=True)
    rig.hub.fail = NoProviderAvailable("Could not subscribe upstream: no WebSocket")
    fid = await rig.call("eth_newBlockFilter")
    node.head = 4
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b'["0xh4"]'


async def test_get_filter_logs_is_an_eth_get_logs_of_the_criteria(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await open_rig(gateway_for(), nursery)
    params = b'[{"address":"0x' + b"1" * 40 + b'","fromBlock":"0x1"}]'
    fid = await rig.call("eth_newFilter", params)
    assert await rig.call("eth_getFilterLogs", b"[%b]" % fid) == b'["forwarded"]'
    assert rig.forwarded == [Call("eth_getLogs", params, b"1")]
    logs = rig.hub.acquired[0][1]
    raw = b'{"blockNumber":"0x0","blockHash":"0xaa","logIndex":"0x0"}'
    logs.deliver(Delivery({"blockNumber": "0x0", "blockHash": "0xaa", "logIndex": "0x0"}, raw), "")
    raw1 = raw.replace(b'"0x0","blockHash', b'"0x1","blockHash')
    logs.deliver(Delivery({"blockNumber": "0x1", "blockHash": "0xbb", "logIndex": "0x0"}, raw1), "")
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b"[" + raw1 + b"]"


async def test_bad_params_and_limits(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await open_rig(gateway_for(filters="[filters]\nmax_per_client = 1\n"), nursery)
    with pytest.raises(InvalidParams, match="missing value for required argument 0"):
        await rig.call("eth_getFilterChanges")
    with pytest.raises(InvalidParams, match="cannot unmarshal"):
        await rig.call("eth_uninstallFilter", b"[1]")
    with pytest.raises(FilterError, match="invalid from and to block combination"):
        await rig.call("eth_newFilter", b'[{"toBlock":"0x5"}]')
    await rig.call("eth_newPendingTransactionFilter")
    with pytest.raises(FilterLimit, match="1 filters per client"):
        await rig.call("eth_newBlockFilter")


class ScriptedNode:
    """What the gateway's normal path answers, for filters polled over HTTP."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.logs: list[bytes] = []
        self.calls: list[Call] = []
        self.fail = False

    async def forward(self, call: Call) -> bytes:
        self.calls.append(call)
        if self.fail:
            raise NoProviderAvailable("every provider failed")
        if call.method == "eth_blockNumber":
            return b'"%b"' % hex(self.head).encode()
        if call.method == "eth_getBlockByNumber":
            number = json.loads(call.params)[0]
            return b'{"number":"%b","hash":"0xh%b"}' % (number.encode(), number[2:].encode())
        assert call.method == "eth_getLogs"
        return b"[" + b",".join(self.logs) + b"]"


async def open_polled_rig(
    nursery: trio.Nursery, *, head: int, ws: bool = False
) -> tuple[Rig, ScriptedNode]:
    """A rig whose gateway path is a :class:`ScriptedNode` at ``head``."""
    rig = await open_rig(gateway_for(ws=ws), nursery)
    node = ScriptedNode(head)
    rig.forward = node.forward  # type: ignore[method-assign]
    return rig, node


async def test_a_chain_without_websocket_providers_polls_over_http(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig, node = await open_polled_rig(nursery, head=5)
    fid = await rig.call("eth_newBlockFilter")
    node.head = 7
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b'["0xh6","0xh7"]'
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b"[]"
    node.head, node.fail = 8, True
    with pytest.raises(NoProviderAvailable):
        await rig.call("eth_getFilterChanges", b"[%b]" % fid)
    node.fail = False  # nothing was lost: the cursor did not move
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b'["0xh8"]'
    node.head = 8 + 1024 + 5  # a rare poller: bounded work per poll, nothing lost
    first = json.loads(await rig.call("eth_getFilterChanges", b"[%b]" % fid))
    rest = json.loads(await rig.call("eth_getFilterChanges", b"[%b]" % fid))
    assert first + rest == [f"0xh{n:x}" for n in range(9, node.head + 1)]
    assert len(first) == 1024
    with pytest.raises(FilterError, match="need a provider with a WebSocket"):
        await rig.call("eth_newPendingTransactionFilter")
    assert rig.hub.acquired == []


async def test_a_polled_log_filter_reads_each_range_once_as_the_node_wrote_it(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig, node = await open_polled_rig(nursery, head=7)
    address = "0x" + "1" * 40
    fid = await rig.call("eth_newFilter", b'[{"address":"%b"}]' % address.encode())
    node.head = 9
    node.logs = [
        b'{"blockNumber": "0x8", "blockHash": "0xb8", "logIndex": "0x0"}',
        b'{"blockNumber":"0x9","blockHash":"0xb9","logIndex":"0x0"}',
    ]
    changes = await rig.call("eth_getFilterChanges", b"[%b]" % fid)
    assert changes == b"[" + b",".join(node.logs) + b"]"  # byte for byte
    query = next(c for c in node.calls if c.method == "eth_getLogs")
    assert json.loads(query.params) == [
        {"address": [address], "fromBlock": "0x8", "toBlock": "0x9"}
    ]
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b"[]"
    assert await rig.call("eth_uninstallFilter", b"[%b]" % fid) == b"true"
    assert rig.service.polled._cursors == {}


async def test_a_polled_log_filter_reads_nothing_past_its_to_block(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig, node = await open_polled_rig(nursery, head=7)
    fid = await rig.call("eth_newFilter", b'[{"fromBlock":"0x1","toBlock":"0x8"}]')
    node.head = 12
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b"[]"
    assert await rig.call("eth_getFilterChanges", b"[%b]" % fid) == b"[]"
    ranges = [json.loads(c.params)[0] for c in node.calls if c.method == "eth_getLogs"]
    assert ranges == [{"fromBlock": "0x8", "toBlock": "0x8"}]


async def test_a_route_pinned_to_a_provider_gets_a_feed_pinned_to_it(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    rig = await open_rig(gateway_for(), nursery)
    await rig.call("eth_newBlockFilter")
    rig.target = rig.gateway.resolve(RouteSpec(chain="devnet", provider="a"), "/rpc/provider/a")
    await rig.call("eth_newBlockFilter")
    await rig.call("eth_newBlockFilter")
    assert rig.hub.pins == [None, "a"]


async def test_a_polled_log_filter_reads_no_more_blocks_per_poll_than_the_logs_cap(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """With ``max_logs_block_range`` below the per-poll bound, a rarely polled filter's
    catch-up range stays within the cap (else every poll got -32602, forever: the
    cursor never moves on an error) and nothing is lost across polls."""
    gateway = gateway_for(ws=False, filters="[routing]\nmax_logs_block_range = 10\n")
    rig = await open_rig(gateway, nursery)
    node = ScriptedNode(head=7)
    rig.forward = node.forward  # type: ignore[method-assign]
    fid = await rig.call("eth_newFilter", b"[{}]")
    node.head = 40
    for _ in range(4):
        await rig.call("eth_getFilterChanges", b"[%b]" % fid)
    ranges = [json.loads(c.params)[0] for c in node.calls if c.method == "eth_getLogs"]
    spans = [(int(r["fromBlock"], 16), int(r["toBlock"], 16)) for r in ranges]
    assert spans == [(8, 17), (18, 27), (28, 37), (38, 40)]
