"""A query of death on scripted fake nodes: a request that crashes every node it reaches.

Each fake node here "crashes" on one request (eth_feeHistory with a block count past
2**64, as anvil panics on it): the connection is lost after the request was sent, a
reset. The dispatcher lets such a request lose at most two providers, then answers a
clear -32000 and refuses the same request for ten minutes (lasso.core.poison).
"""

from __future__ import annotations

import json

import msgspec
import pytest
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.core.jsonrpc import Call
from lasso.core.poison import QUARANTINE_S
from lasso.core.router import Strategy
from lasso.dispatch import Outcome, dispatch
from lasso.errors import LassoError, NoProviderAvailable, RequestQuarantined, UpstreamNetworkError
from lasso.gateway import Gateway
from lasso.opspublish import watch_websocket
from lasso.upstream.http import HttpResponse
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.support.asgi import asgi_request, open_asgi_websocket
from tests.support.fakes import FakeNode

QOD_PARAMS = b'["0x400000000000000000","latest",[]]'
QOD = Call("eth_feeHistory", QOD_PARAMS, b"1")
BALANCE = Call("eth_getBalance", b'["0x0000000000000000000000000000000000000001","latest"]', b"1")
WHY = "the request lost the connection to 2 providers mid-request"


class CrashingNode(FakeNode):
    """A fake node that "crashes" on the query of death: the connection is reset after
    the request was sent (``crash_fault``), and counts it."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_fault = Fault.RESET
        self.crashes = 0

    async def handle(self, body: bytes) -> HttpResponse:
        request = msgspec.json.decode(body)
        if request.get("method") == "eth_feeHistory" and _huge(request.get("params")):
            self.calls.append("eth_feeHistory")
            self.crashes += 1
            if self.delay_s:
                await trio.sleep(self.delay_s)
            if self.crash_fault is Fault.REFUSED:
                raise UpstreamNetworkError("connection refused", never_sent=True)
            raise UpstreamNetworkError("connection reset by peer")
        return await super().handle(body)


def _huge(params: object) -> bool:
    return isinstance(params, list) and bool(params) and int(params[0], 16) >= 2**64


@pytest.fixture
def fleet() -> FakeFleet:
    fleet = FakeFleet()
    for pid in ("p1", "p2", "p3"):
        fleet.nodes[pid] = CrashingNode()
    return fleet


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


def node(fleet: FakeFleet, pid: str) -> CrashingNode:
    found = fleet.nodes[pid]
    assert isinstance(found, CrashingNode)
    return found


def crashes(fleet: FakeFleet) -> list[int]:
    return [node(fleet, pid).crashes for pid in ("p1", "p2", "p3")]


async def call(
    chain: ChainRuntime, request: Call, *, hedge_after_s: float | None = None
) -> tuple[bytes, Outcome]:
    plan = chain.plan(
        request.method,
        trio.current_time(),
        strategy=Strategy.PRIORITY,
        provider=None,
        params=request.params,
    )
    outcome = Outcome()
    return await dispatch(chain, request, plan, outcome, hedge_after_s=hedge_after_s), outcome


@pytest.mark.parametrize("fault", [Fault.RESET, Fault.FORWARD_THEN_RESET])
async def test_two_providers_lost_mid_request_then_a_clear_error(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock, fault: Fault
) -> None:
    # RESET (the node read the request, then the connection was reset) and
    # FORWARD_THEN_RESET (the node answered, the answer was cut) look the same on the
    # wire: the request was sent, then the connection was lost.
    for pid in ("p1", "p2", "p3"):
        fleet.nodes[pid].fault = fault
    with pytest.raises(RequestQuarantined) as info:
        await call(chain_of(gateway), BALANCE)
    assert info.value.code == -32000
    assert WHY in info.value.message
    assert [a["provider"] for a in info.value.data["attempts"]] == ["p1", "p2"]
    assert info.value.data["quarantined_ms"] == QUARANTINE_S * 1000
    assert fleet.nodes["p3"].calls == []


async def test_the_query_of_death_crashes_two_nodes_then_none(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    with pytest.raises(RequestQuarantined) as first:
        await call(chain, QOD)
    assert crashes(fleet) == [1, 1, 0]
    await trio.sleep(1.0)
    with pytest.raises(RequestQuarantined) as again:  # refused at once, no provider reached
        await call(
            chain, Call("eth_feeHistory", b' [ "0x400000000000000000" , "latest", [ ] ]', b"2")
        )
    assert crashes(fleet) == [1, 1, 0]
    assert again.value.code == -32000
    assert WHY in again.value.message
    assert again.value.data == {"quarantined_ms": (QUARANTINE_S - 1.0) * 1000}
    assert first.value.message.split(";")[0] == again.value.message.split(";")[0]
    stats = chain.poison.statistics(trio.current_time())
    assert (stats.quarantined_now, stats.stopped, stats.refused) == (1, 1, 1)
    _, outcome = await call(chain, BALANCE)  # everything else is served as ever
    assert outcome.provider == "p1"


async def test_after_the_quarantine_it_is_tried_again(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    with pytest.raises(RequestQuarantined):
        await call(chain, QOD)
    await trio.sleep(QUARANTINE_S)
    with pytest.raises(RequestQuarantined):
        await call(chain, QOD)
    assert crashes(fleet) == [2, 2, 0]


async def test_refused_connections_still_fail_over_to_every_provider(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # A refused connection never carried the request: not a loss mid-request.
    for pid in ("p1", "p2", "p3"):
        node(fleet, pid).crash_fault = Fault.REFUSED
    chain = chain_of(gateway)
    for _ in range(2):
        with pytest.raises(NoProviderAvailable) as info:
            await call(chain, QOD)
        assert not isinstance(info.value, RequestQuarantined)
        assert [a["provider"] for a in info.value.data["attempts"]] == ["p1", "p2", "p3"]
    assert crashes(fleet) == [2, 2, 2]
    assert chain.poison.statistics(trio.current_time()).stopped == 0


async def test_one_flaky_provider_is_still_invisible(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    for _ in range(3):  # three requests, each losing p1 once: none is stopped
        fleet.nodes["p1"].queued.append(Fault.RESET)
        result, outcome = await call(chain, BALANCE)
        assert result == b'"0x56bc75e2d63100000"'
        assert outcome.provider == "p2"
    assert chain.poison.statistics(trio.current_time()).stopped == 0


async def test_a_request_answered_lately_fails_over_past_two_lost_providers(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # A bystander: in flight on two nodes as a query of death crashed them. It was
    # answered a moment ago, so it is no query of death: it goes on to the third.
    chain = chain_of(gateway)
    await call(chain, BALANCE)
    fleet.nodes["p1"].queued.append(Fault.RESET)
    fleet.nodes["p2"].queued.append(Fault.RESET)
    result, outcome = await call(chain, BALANCE)
    assert result == b'"0x56bc75e2d63100000"'
    assert outcome.provider == "p3"
    stats = chain.poison.statistics(trio.current_time())
    assert (stats.stopped, stats.exempted, stats.quarantined_now) == (0, 1, 0)


async def test_a_hedged_request_follows_the_same_rule(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for pid in ("p1", "p2", "p3"):
        node(fleet, pid).delay_s = 0.15  # each takes 0.15 s to crash
    start = trio.current_time()
    with pytest.raises(RequestQuarantined):
        await call(chain_of(gateway), QOD, hedge_after_s=0.1)
    # p2 was raced in at 0.1 s; p1 crashed at 0.15 s: from then on one attempt at a
    # time, so p3 (due at 0.2 s) never started, and p2's crash at 0.25 s ended it.
    assert trio.current_time() - start == pytest.approx(0.25)
    assert crashes(fleet) == [1, 1, 0]


async def test_after_a_loss_a_hedged_request_stops_racing(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    node(fleet, "p1").delay_s = 0.02
    node(fleet, "p2").delay_s = 0.5
    start = trio.current_time()
    with pytest.raises(RequestQuarantined):
        await call(chain_of(gateway), QOD, hedge_after_s=0.1)
    # p1 crashed at 0.02 s and p2 started at once; without the rule p3 would have
    # been raced in at 0.12 s.
    assert trio.current_time() - start == pytest.approx(0.52)
    assert crashes(fleet) == [1, 1, 0]


async def test_a_hedged_read_with_one_flaky_provider_is_answered(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].queued.append(Fault.RESET)
    result, outcome = await call(chain_of(gateway), BALANCE, hedge_after_s=0.1)
    assert result == b'"0x56bc75e2d63100000"'
    assert outcome.provider == "p2"


def body(method: str, params: bytes, rid: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}' % (rid, method.encode(), params)


async def test_a_batch_item_follows_the_same_rule(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    batch = b"[" + body("eth_feeHistory", QOD_PARAMS, 1) + b"," + body("eth_chainId", b"[]", 2)
    batch += b"," + body("eth_blockNumber", b"[]", 3) + b"]"
    response = await asgi_request(app, "POST", "/rpc/priority/testnet", batch)
    assert response.status == 200
    qod, chain_id, head = response.json()
    assert qod["id"] == 1 and qod["error"]["code"] == -32000
    assert WHY in qod["error"]["message"]
    assert chain_id == {"jsonrpc": "2.0", "id": 2, "result": "0x7a69"}
    assert head == {"jsonrpc": "2.0", "id": 3, "result": "0x64"}
    assert crashes(fleet) == [1, 1, 0]
    again = await asgi_request(app, "POST", "/rpc/priority/testnet", batch)
    assert WHY in again.json()[0]["error"]["message"]
    assert crashes(fleet) == [1, 1, 0]


async def test_a_websocket_call_follows_the_same_rule(app: LassoASGI, fleet: FakeFleet) -> None:
    async with open_asgi_websocket(app, "/ws/rpc/priority/testnet") as ws:
        with trio.fail_after(5):
            for rid in (1, 2):
                await ws.send_bytes(body("eth_feeHistory", QOD_PARAMS, rid))
                answer = await ws.receive_json()
                assert answer["id"] == rid and answer["error"]["code"] == -32000
                assert WHY in answer["error"]["message"]
            await ws.send_bytes(body("eth_blockNumber", b"[]", 3))
            assert (await ws.receive_json())["result"] == "0x64"
    assert crashes(fleet) == [1, 1, 0]


async def test_health_and_metrics_count_them(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for _ in range(3):
        await asgi_request(app, "POST", "/rpc/testnet", body("eth_feeHistory", QOD_PARAMS, 1))
    health = json.loads((await asgi_request(app, "GET", "/health")).body)
    assert health["chains"]["testnet"]["poisoned_requests"] == {
        "quarantined_now": 1,
        "stopped": 1,
        "refused": 2,
        "exempted": 0,
    }
    metrics = (await asgi_request(app, "GET", "/metrics")).body.decode()
    assert 'lasso_poisoned_requests_total{chain="testnet",outcome="stopped"} 1' in metrics
    assert 'lasso_poisoned_requests_total{chain="testnet",outcome="refused"} 2' in metrics


# --- an outage of every provider is no query of death (the all-down-then-recovery battle) ---

#: A request never answered before (the battle's web3 filter client looking up a fresh block's
#: hash): nothing exempts it.
FRESH = Call("eth_getBalance", b'["0x00000000000000000000000000000000000000f1","latest"]', b"9")


def set_faults(fleet: FakeFleet, fault: Fault | None) -> None:
    for pid in ("p1", "p2", "p3"):
        fleet.nodes[pid].fault = fault


async def test_a_request_in_flight_when_every_provider_is_cut_is_not_quarantined(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # FRESH is in flight on p1 when every provider is cut (connections reset). The rest of
    # the traffic finds p2 and p3 down first; then FRESH loses p1 and fails over to them,
    # already known to be down, and loses them too. It crashed none of them: it gets the
    # outage's error, and once the providers are back it is answered. (It used to be
    # quarantined, and refused for ten minutes after the outage.)
    chain = chain_of(gateway)
    await call(chain, BALANCE)  # popular traffic, answered lately
    p1 = node(fleet, "p1")
    p1.queued.append(Fault.RESET)  # FRESH's connection to p1 is reset by the cut...
    p1.delay_s = 1.0  # ...at 1.0 s, while it is in flight
    failed: list[LassoError] = []

    async def in_flight() -> None:
        try:
            await call(chain, FRESH)
        except LassoError as exc:
            failed.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(in_flight)
        await trio.sleep(0.5)  # the cut
        p1.delay_s = 0.0
        set_faults(fleet, Fault.RESET)
        with pytest.raises(NoProviderAvailable):  # the traffic finds every provider down
            await call(chain, BALANCE)
    assert len(failed) == 1
    assert isinstance(failed[0], NoProviderAvailable)
    assert not isinstance(failed[0], RequestQuarantined)
    assert [a["provider"] for a in failed[0].data["attempts"]][:3] == ["p1", "p2", "p3"]
    assert chain.poison.statistics(trio.current_time()).stopped == 0
    set_faults(fleet, None)  # the providers come back
    await trio.sleep(60)
    result, _ = await call(chain, FRESH)
    assert result == b'"0x56bc75e2d63100000"'


async def test_a_dropped_websocket_is_a_provider_seen_failing(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # The cut as the gateway sees it first: every upstream WebSocket drops. A request then
    # loses p1 mid-request and fails over to p2 and p3, whose WebSockets had dropped.
    chain = chain_of(gateway)
    await trio.sleep(1.0)
    for pid in ("p2", "p3"):
        watch_websocket(chain, pid)(False, "connection lost (1006 abnormal closure)")
    await trio.sleep(0.01)
    set_faults(fleet, Fault.RESET)
    with pytest.raises(NoProviderAvailable) as info:
        await call(chain, FRESH)
    assert not isinstance(info.value, RequestQuarantined)
    assert [a["provider"] for a in info.value.data["attempts"]] == ["p1", "p2", "p3"]


async def test_after_an_outage_a_query_of_death_is_stopped_as_ever(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # The outage rule spares only losses on providers already failing: once the providers
    # are back (they answered, or their failures are old), a query of death crashes two.
    chain = chain_of(gateway)
    set_faults(fleet, Fault.RESET)
    with pytest.raises(NoProviderAvailable):
        await call(chain, BALANCE)
    set_faults(fleet, None)
    await trio.sleep(60)
    with pytest.raises(RequestQuarantined):
        await call(chain, QOD)
    assert crashes(fleet) == [1, 1, 0]


async def test_a_websocket_back_up_is_a_provider_working_again(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    # Dropped, then reconnected: the provider works again, and a query of death that
    # crashes it counts as ever (two crashes, the third node spared).
    chain = chain_of(gateway)
    for pid in ("p1", "p2", "p3"):
        link = watch_websocket(chain, pid)
        link(False, "connection lost (1006 abnormal closure)")
        await trio.sleep(0.5)
        link(True, "")
    with pytest.raises(RequestQuarantined):
        await call(chain, QOD)
    assert crashes(fleet) == [1, 1, 0]
