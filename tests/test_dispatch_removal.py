"""A provider removed from its chain mid-request: dispatch acts on what it planned with.

The plan is resolved to provider and channel objects once, before the first await
(``lasso.dispatch.Targets``), so removing the provider from ``chain.providers``
while its attempt is in flight (what a reload does) cannot turn the answer into a
``KeyError``: the client gets the provider's answer, and the outcome is recorded
on the channel the attempt went through.
"""

from __future__ import annotations

import trio
import trio.testing

from lasso.core.jsonrpc import Call
from lasso.core.latency import LatencyKey
from lasso.core.router import Strategy
from lasso.dispatch import Outcome, dispatch
from lasso.gateway import Gateway
from tests.conftest import FakeFleet

BLOCK_NUMBER = Call("eth_blockNumber", b"[]", b"1")


async def _removed_mid_flight(
    gateway: Gateway, fleet: FakeFleet, *, hedge_after_s: float | None
) -> tuple[bytes, Outcome]:
    chain = gateway.profiles["default"]["testnet"]
    fleet.nodes["p1"].delay_s = 0.2
    removed = chain.providers["p1"]
    plan = chain.plan(
        "eth_blockNumber",
        trio.current_time(),
        strategy=Strategy.PRIORITY,
        provider=None,
        params=b"[]",
    )
    outcome = Outcome()
    answer: list[bytes] = []

    async def client() -> None:
        answer.append(
            await dispatch(chain, BLOCK_NUMBER, plan, outcome, hedge_after_s=hedge_after_s)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        await trio.testing.wait_all_tasks_blocked()  # the attempt waits on p1's answer
        assert fleet.nodes["p1"].calls == ["eth_blockNumber"]
        del chain.providers["p1"]  # a reload removes it while its attempt is in flight
    stats = removed.channel("http").latency("eth_blockNumber")
    assert stats is not None and stats.samples == 1  # recorded on the channel it used
    assert chain.latency.get(LatencyKey("p1", "eth_blockNumber", "http")) is stats
    return answer[0], outcome


async def test_a_removed_provider_still_answers_its_request_in_flight(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    result, outcome = await _removed_mid_flight(gateway, fleet, hedge_after_s=None)
    assert result == b'"0x64"'
    assert (outcome.provider, outcome.attempts) == ("p1", [])


async def test_a_removed_provider_still_answers_a_hedged_request(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    result, outcome = await _removed_mid_flight(gateway, fleet, hedge_after_s=1.0)
    assert result == b'"0x64"'
    assert outcome.provider == "p1"


async def test_a_pinned_plan_for_a_removed_provider_is_no_provider_not_a_key_error(
    gateway: Gateway,
) -> None:
    chain = gateway.profiles["default"]["testnet"]
    del chain.providers["p1"]
    plan = chain.plan(
        "eth_blockNumber", trio.current_time(), strategy=None, provider="p1", params=b"[]"
    )
    assert plan.channels == () and plan.excluded_open == ()
