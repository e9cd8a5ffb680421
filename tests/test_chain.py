"""Per-chain decisions: hedge delays from the configuration and the latency book."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.config import parse_settings
from lasso.core.breaker import CircuitState, FailureKind
from lasso.core.latency import LatencyKey
from lasso.core.router import Strategy
from tests.support.fake_ws import websockets_for

BASE = """
[chains.c]
chain_id = 1
{hedge}
providers = [{{ id = "a", url = "http://a.invalid" }}, {{ id = "b", url = "http://b.invalid" }}]
"""


def chain(hedge: str) -> ChainRuntime:
    settings = parse_settings(BASE.format(hedge=hedge), env={})
    config = settings.default_profile.chains["c"]
    return ChainRuntime("c", config, routing=settings.routing, rng=random.Random(1))


def delay(runtime: ChainRuntime, method: str) -> float | None:
    plan = runtime.plan(method, 0.0, strategy=Strategy.PRIORITY, provider=None, params=b"[]")
    return runtime.hedge_delay_s(method, plan)


@pytest.mark.parametrize(
    ("hedge", "method", "expected"),
    [
        ("", "eth_call", None),
        ("hedge = { after_ms = 150 }", "eth_call", 0.15),
        ("hedge = { after_ms = 150 }", "eth_sendRawTransaction", None),  # never hedge writes
        ('hedge = { after_ms = 150, methods = ["eth_getLogs"] }', "eth_call", None),
        ('hedge = { after_ms = 150, methods = ["eth_getLogs"] }', "eth_getLogs", 0.15),
        ("hedge = { adaptive = true }", "eth_call", None),  # no samples yet, no floor
        ("hedge = { adaptive = true, after_ms = 80 }", "eth_call", 0.08),
    ],
)
def test_hedge_delay(hedge: str, method: str, expected: float | None) -> None:
    assert delay(chain(hedge), method) == expected


def test_adaptive_hedge_uses_the_first_providers_p95() -> None:
    runtime = chain("hedge = { adaptive = true, after_ms = 5 }")
    key = LatencyKey("a", "eth_call", "http")
    for i in range(1, 101):  # 1..100 ms
        runtime.latency.record_success(key, float(i), i * 1000)
    assert delay(runtime, "eth_call") == pytest.approx(0.095)


def test_pinned_calls_are_never_hedged() -> None:
    runtime = chain("hedge = { after_ms = 150 }")
    plan = runtime.plan("eth_call", 0.0, strategy=None, provider="a", params=b"[]")
    assert runtime.hedge_delay_s("eth_call", plan) is None


def test_availability_is_what_routing_sees() -> None:
    """A disconnected WebSocket's breaker stays closed, yet it is no way to the provider."""
    text = """
[chains.c]
chain_id = 1
providers = [
  { id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid" },
  { id = "b", url = "http://b.invalid" },
]
"""
    settings = parse_settings(text, env={})
    runtime = ChainRuntime(
        "c",
        settings.default_profile.chains["c"],
        routing=settings.routing,
        rng=random.Random(1),
        websockets=websockets_for("c"),
    )
    assert (runtime.available(0.0), runtime.available_providers(0.0)) == (True, 2)
    for provider in runtime.providers.values():
        for _ in range(5):
            provider.channel("http").breaker.record_external_failure(0.0, FailureKind.SERVER)
    assert runtime.providers["a"].channel("ws").breaker.state(0.0) is CircuitState.CLOSED
    assert (runtime.available(0.0), runtime.available_providers(0.0)) == (False, 0)
    plan = runtime.plan("eth_call", 0.0, strategy=None, provider=None, params=b"[]")
    assert plan.channels == () and plan.retry_after_ms() == 500  # the chain is in recovery


async def test_a_head_report_reaches_chain_state_and_waiters() -> None:

    runtime = chain("")
    woke: list[int | None] = []

    async def waiter() -> None:
        await runtime.head_changed()
        woke.append(runtime.state.height("a"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        runtime.observe_head("a", 7, "0x" + "aa" * 32, "0x" + "bb" * 32, trio.current_time())
    assert woke == [7]
    assert runtime.state.height("a") == 7
    assert runtime.state.consensus_head(trio.current_time()) == 7
