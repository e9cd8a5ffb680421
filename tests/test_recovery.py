"""Recovery mode on virtual time: a chain with no provider available probes at once and
every few hundred ms, so the first success comes right after a provider returns."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.config import Settings
from lasso.core.breaker import CircuitState
from lasso.core.jsonrpc import Call
from lasso.core.recovery import RecoveryPolicy
from lasso.core.router import Strategy
from lasso.daemon import open_gateway
from lasso.dispatch import Outcome, dispatch
from lasso.errors import LassoError, NoProviderAvailable
from lasso.gateway import Gateway
from lasso.web.health import health
from tests.conftest import FakeFleet

BLOCK_NUMBER = Call("eth_blockNumber", b"[]", b"1")
EVERY_S = 0.25


@pytest.fixture
async def chain(settings: Settings, fleet: FakeFleet) -> AsyncIterator[ChainRuntime]:
    runtime = ChainRuntime(
        "testnet",
        settings.default_profile.chains["testnet"],
        routing=settings.routing,
        rng=random.Random(7),
        transports=fleet.transport,
        recovery=RecoveryPolicy(probe_min_s=EVERY_S, probe_max_s=EVERY_S),  # no jitter
    )
    async with trio.open_nursery() as nursery:
        for provider in runtime.providers.values():
            nursery.start_soon(provider.run)
        await trio.testing.wait_all_tasks_blocked()  # every prober is waiting
        yield runtime
        nursery.cancel_scope.cancel()


async def call(chain: ChainRuntime, provider: str | None = None) -> tuple[bytes, Outcome]:
    now = trio.current_time()
    plan = chain.plan(
        "eth_blockNumber", now, strategy=Strategy.PRIORITY, provider=provider, params=b"[]"
    )
    outcome = Outcome()
    return await dispatch(chain, BLOCK_NUMBER, plan, outcome), outcome


async def take_everything_down(chain: ChainRuntime, fleet: FakeFleet) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.REFUSED
    for _ in range(3):  # three network failures open each breaker
        with pytest.raises(NoProviderAvailable):
            await call(chain)
    now = trio.current_time()
    assert {p.channel("http").breaker.state(now) for p in chain.providers.values()} == {
        CircuitState.OPEN
    }


def probes(fleet: FakeFleet) -> dict[str, int]:
    return {pid: node.calls.count("eth_chainId") for pid, node in fleet.nodes.items()}


async def test_probes_at_once_then_every_interval_and_back_within_one(
    chain: ChainRuntime, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    await take_everything_down(chain, fleet)
    t0 = trio.current_time()
    before = {pid: p.channel("http").breaker.statistics(t0) for pid, p in chain.providers.items()}
    assert probes(fleet) == {"p1": 0, "p2": 0, "p3": 0}

    # A request finds nothing available: it is told to come back after the probing
    # interval, and it wakes every prober at once.
    with pytest.raises(NoProviderAvailable) as info:
        await call(chain)
    assert info.value.data["retry_after_ms"] == EVERY_S * 1000
    await trio.testing.wait_all_tasks_blocked()
    assert trio.current_time() == t0
    assert probes(fleet) == {"p1": 1, "p2": 1, "p3": 1}

    # Then one probe each every 250 ms (at t0 + 0.25, 0.5, 0.75), and failed recovery
    # probes cost the breakers nothing: same deadline, no reopen.
    await trio.sleep_until(t0 + 0.9)
    assert probes(fleet) == {"p1": 4, "p2": 4, "p3": 4}
    now = trio.current_time()
    for pid, provider in chain.providers.items():
        stats = provider.channel("http").breaker.statistics(now)
        assert stats.state is CircuitState.OPEN
        assert stats.recovery_deadline == before[pid].recovery_deadline
        assert stats.reopen_count == 0 and stats.total_opens == 1

    # p2 comes back at t0 + 0.9; its next probe, at t0 + 1.0, closes its breaker.
    back_at = trio.current_time()
    fleet.nodes["p2"].fault = None
    while True:
        try:
            result, outcome = await call(chain)
            break
        except NoProviderAvailable as exc:
            await trio.sleep(exc.data["retry_after_ms"] / 1000)
    assert result == b'"0x64"' and outcome.provider == "p2"
    # The probe at +0.1 s closed p2; the client, told at +0 to retry after 250 ms, got
    # its answer then.
    assert trio.current_time() - back_at == pytest.approx(0.25)
    assert fleet.nodes["p2"].calls[-2:] == ["eth_chainId", "eth_blockNumber"]
    assert (
        chain.providers["p2"].channel("http").breaker.state(trio.current_time())
        is CircuitState.CLOSED
    )

    # The chain is no longer in recovery: the others wait out their own deadlines again.
    settled = probes(fleet)
    await trio.sleep(5.0)
    assert probes(fleet) == settled


async def test_a_flood_of_failing_requests_is_no_flood_of_probes(
    chain: ChainRuntime, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    await take_everything_down(chain, fleet)
    t0 = trio.current_time()
    for _ in range(100):
        with pytest.raises(NoProviderAvailable):
            await call(chain)
        await trio.sleep(0.001)
    assert trio.current_time() == pytest.approx(t0 + 0.1)
    assert probes(fleet) == {"p1": 1, "p2": 1, "p3": 1}  # one alarm per interval at most


async def test_a_pinned_request_to_a_down_provider_does_not_start_recovery(
    chain: ChainRuntime, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.REFUSED
    for _ in range(3):
        with pytest.raises(LassoError):  # pinned: the provider's own error
            await call(chain, provider="p1")
    with pytest.raises(NoProviderAvailable) as info:
        await call(chain, provider="p1")
    assert info.value.data["retry_after_ms"] >= 60_000  # others serve: no hurry
    await trio.sleep(5.0)
    assert probes(fleet)["p1"] == 0


async def test_health_reports_a_chain_with_nothing_available(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = gateway.profiles["default"]["testnet"]
    report = health(gateway)
    assert report["status"] == "healthy"
    assert report["chains"]["testnet"]["status"] == "healthy"
    fleet.nodes["p1"].fault = Fault.REFUSED
    for _ in range(3):
        with pytest.raises(LassoError):  # pinned: the provider's own error
            await call(chain, provider="p1")
    assert health(gateway)["chains"]["testnet"]["status"] == "degraded"
    assert health(gateway)["status"] == "healthy"  # the chain still serves
    await take_everything_down(chain, fleet)
    report = health(gateway)
    assert report["status"] == "degraded"
    testnet = report["chains"]["testnet"]
    assert (testnet["status"], testnet["available_providers"], testnet["recovering"]) == (
        "unavailable",
        0,
        True,
    )


async def test_the_gateway_recovers_its_chains_too(
    settings: Settings, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        chain = gw.profiles["default"]["testnet"]
        await take_everything_down(chain, fleet)
        with pytest.raises(NoProviderAvailable) as info:
            await call(chain)
        assert info.value.data["retry_after_ms"] <= 500
        fleet.nodes["p3"].fault = None
        back_at = trio.current_time()
        while True:
            try:
                await call(chain)
                break
            except NoProviderAvailable as exc:
                await trio.sleep(exc.data["retry_after_ms"] / 1000)
        assert trio.current_time() - back_at <= 1.0
