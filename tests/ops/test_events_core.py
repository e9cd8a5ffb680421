"""The core publishes operator events, and each becomes exactly one log line per transition.

Real transitions on scripted fake nodes and virtual time: providers that fail
until their breakers open, recover through half-open, fail over, answer 429,
crash mid-request; the gateway is the daemon's (``open_gateway``, which installs
the event log). Each test counts the ``lasso.events`` lines and the published
events.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from types import UnionType

import pytest
import trio
import trio.testing

from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.config import Settings, load_settings, parse_settings
from lasso.core.breaker import CircuitState
from lasso.core.jsonrpc import Call
from lasso.core.router import Strategy
from lasso.daemon import open_gateway
from lasso.dispatch import Outcome, dispatch
from lasso.errors import LassoError
from lasso.eventlog import EventLog
from lasso.gateway import Gateway
from lasso.opsevents import (
    BreakerChanged,
    Failover,
    OpsEvent,
    OpsEvents,
    ProviderDown,
    ProviderUp,
    Quarantined,
    Reloaded,
    UpstreamRateLimited,
)
from lasso.opspublish import reloaded
from lasso.reload import ReloadState, reload_once
from tests.conftest import FakeFleet
from tests.support.fake_ws import open_fake_ws_nodes, wait_ws_connected
from tests.support.fakes import FakeNode

PROVIDERS = 7  # p1..p6 are made to fail; p7 stays healthy, so the chain is never in recovery
SETTINGS = f"""
[routing]
max_attempts = 3

[chains.testnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 0
providers = [
{", ".join(f'{{ id = "p{i}", url = "http://p{i}.invalid", priority = {i} }}' for i in range(1, PROVIDERS + 1))}
]
"""
BLOCK_NUMBER = Call("eth_blockNumber", b"[]", b"1")
FEE_HISTORY = Call("eth_feeHistory", b'["0x10000000000000000","latest",[]]', b"1")


@pytest.fixture
def settings() -> Settings:
    return parse_settings(SETTINGS, env={})


@pytest.fixture
async def gateway(settings: Settings, fleet: FakeFleet) -> AsyncIterator[Gateway]:
    async with open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gw:
        yield gw


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, "lasso.events")
    return caplog


def event_lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "lasso.events" and r.getMessage().startswith(start)
    ]


def published(gateway: Gateway, kind: type[OpsEvent] | UnionType) -> list[OpsEvent]:
    return [e for e in gateway.events.recent if isinstance(e, kind)]


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


async def call(chain: ChainRuntime, request: Call, provider: str | None = None) -> Outcome:
    plan = chain.plan(
        request.method,
        trio.current_time(),
        strategy=Strategy.PRIORITY,
        provider=provider,
        params=request.params,
    )
    outcome = Outcome()
    with contextlib.suppress(LassoError):  # the outcome is what these tests read
        await dispatch(chain, request, plan, outcome)
    return outcome


async def test_six_breakers_open_six_lines_then_half_open_and_closed_once_each(
    gateway: Gateway,
    fleet: FakeFleet,
    lines: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain = chain_of(gateway)
    failing = [f"p{i}" for i in range(1, 7)]
    for name in failing:
        fleet.nodes[name].fault = Fault.HTML_500
    for name in failing:  # five server errors open a breaker (failure_threshold = 5)
        for _ in range(8):  # more than needed: an open breaker is not news again
            await call(chain, BLOCK_NUMBER, provider=name)
    now = trio.current_time()
    assert [chain.providers[n].channel("http").circuit(now) for n in failing] == [
        CircuitState.OPEN
    ] * 6
    opened = event_lines(lines, "breaker open")
    assert len(opened) == 6
    for name, line in zip(failing, opened, strict=True):
        assert f"profile=default chain=testnet provider={name} transport=http" in line
        assert "(closed -> open: 5 consecutive failures (last: protocol))" in line
    assert all(
        r.levelno == logging.WARNING
        for r in lines.records
        if r.getMessage().startswith("breaker open")
    )
    for name in failing:
        fleet.nodes[name].fault = None
    # recovery_timeout 60 s (+ up to 5 % jitter); the prober asks every second, so each
    # breaker goes half-open, and two probe successes close it
    await trio.sleep(70)
    now = trio.current_time()
    assert [chain.providers[n].channel("http").circuit(now) for n in failing] == [
        CircuitState.CLOSED
    ] * 6
    half_open = event_lines(lines, "breaker half_open")
    closed = event_lines(lines, "breaker closed")
    assert sorted(line.split("provider=")[1].split()[0] for line in half_open) == failing
    assert sorted(line.split("provider=")[1].split()[0] for line in closed) == failing
    assert all("(open -> half_open: recovery deadline reached" in line for line in half_open)
    assert all("(half_open -> closed: 2 probes succeeded)" in line for line in closed)
    events = published(gateway, BreakerChanged)
    assert len(events) == 18  # 6 x (open, half_open, closed), each once
    assert {(e.profile, e.chain) for e in events} == {("default", "testnet")}


async def test_a_failover_is_one_line_and_a_storm_is_summed_up(
    gateway: Gateway,
    fleet: FakeFleet,
    lines: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].queued.append(Fault.HTML_500)
    outcome = await call(chain, BLOCK_NUMBER)
    assert outcome.provider == "p2"
    (line,) = event_lines(lines, "failover")
    assert line == (
        "failover: profile=default chain=testnet provider=p1 -> p2 method=eth_blockNumber: "
        "provider_failure: Provider infrastructure error (HTTP 500): "
        "<html><body>500 Internal Server Error</body></html>"
    )
    # a storm: 3 more within the window are counted, not logged, then summed up once
    for _ in range(3):
        fleet.nodes["p1"].queued.append(Fault.HTML_500)
        assert (await call(chain, BLOCK_NUMBER)).provider == "p2"
    assert len(event_lines(lines, "failover")) == 1
    assert len(published(gateway, Failover)) == 4  # metrics see every one
    await trio.sleep(10.5)
    summary = event_lines(lines, "failover")[1:]
    assert len(summary) == 1
    assert "(x3 in the last 10 s, the last shown)" in summary[0]
    await trio.sleep(30)  # nothing more happened: no more lines
    assert len(event_lines(lines, "failover")) == 2


async def test_no_failover_line_for_a_call_served_first_time(
    gateway: Gateway, lines: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    await call(chain_of(gateway), BLOCK_NUMBER)
    assert event_lines(lines, "failover") == []
    assert published(gateway, Failover) == []


async def test_upstream_429s_are_one_line_per_limited_period(
    gateway: Gateway,
    fleet: FakeFleet,
    lines: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].queued.extend([Fault.RATE_LIMITED_429] * 3)  # Retry-After: 7
    for _ in range(3):
        await call(chain, BLOCK_NUMBER, provider="p1")
    assert fleet.nodes["p1"].calls.count("eth_blockNumber") == 3
    (line,) = event_lines(lines, "upstream rate limited")
    assert line == (
        "upstream rate limited: profile=default chain=testnet provider=p1 transport=http "
        "retry_after_ms=7000"
    )
    assert len(published(gateway, UpstreamRateLimited)) == 1
    await trio.sleep(8)  # the period is over: the next 429 starts a new one
    fleet.nodes["p1"].queued.append(Fault.RATE_LIMITED_429)
    await call(chain, BLOCK_NUMBER, provider="p1")
    assert len(event_lines(lines, "upstream rate limited")) == 2


async def test_a_quarantine_is_one_line_and_its_refusals_none(
    gateway: Gateway,
    fleet: FakeFleet,
    lines: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].queued.append(Fault.FORWARD_THEN_RESET)
    fleet.nodes["p2"].queued.append(Fault.FORWARD_THEN_RESET)
    await call(chain, FEE_HISTORY)
    for _ in range(3):  # refused at once, no provider reached, no new line
        await call(chain, FEE_HISTORY)
    (line,) = event_lines(lines, "request quarantined")
    assert line == (
        "request quarantined: profile=default chain=testnet provider=p2 "
        "method=eth_feeHistory for 600 s: lost the connection mid-request to p1, p2"
    )
    assert len(published(gateway, Quarantined)) == 1


WS_SETTINGS = """
[chains.testnet]
chain_id = 31337
head_poll_ms = 0
providers = [
  { id = "p1", url = "http://p1.invalid", ws_url = "ws://p1.invalid", priority = 1 },
  { id = "p2", url = "http://p2.invalid", priority = 2 },
]
"""


async def test_websocket_up_and_down_are_one_line_per_change(
    fleet: FakeFleet, lines: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    settings = parse_settings(WS_SETTINGS, env={})
    node = FakeNode()
    async with (
        open_fake_ws_nodes({"p1": node}) as (fakes, connect),
        open_gateway(
            settings, rng=random.Random(7), transports=fleet.transport, connector=connect
        ) as gateway,
    ):
        provider = chain_of(gateway).providers["p1"]
        await wait_ws_connected([provider])
        assert event_lines(lines, "provider") == [
            "provider up: profile=default chain=testnet provider=p1 transport=ws"
        ]
        fakes["p1"].refuse = True  # it stays down: many failed dials, one line
        fakes["p1"].drop()
        await trio.sleep(120)
        assert fakes["p1"].dials > 5
        down = event_lines(lines, "provider down")
        assert len(down) == 1
        assert down[0].startswith(
            "provider down: profile=default chain=testnet provider=p1 transport=ws: "
        )
        fakes["p1"].refuse = False
        await trio.sleep(60)
        await wait_ws_connected([provider])
        assert len(event_lines(lines, "provider up")) == 2
        assert [type(e).__name__ for e in published(gateway, ProviderUp | ProviderDown)] == [
            "ProviderUp",
            "ProviderDown",
            "ProviderUp",
        ]


async def test_a_first_dial_that_fails_is_one_down_line(
    fleet: FakeFleet, lines: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    settings = parse_settings(WS_SETTINGS, env={})
    async with open_fake_ws_nodes({"p1": FakeNode()}) as (fakes, connect):
        fakes["p1"].refuse = True
        async with open_gateway(
            settings, rng=random.Random(7), transports=fleet.transport, connector=connect
        ):
            await trio.sleep(60)
    assert fakes["p1"].dials > 3
    (line,) = event_lines(lines, "provider")
    assert line.startswith("provider down: profile=default chain=testnet provider=p1 transport=ws")


RELOAD_CONFIG = """
[chains.testnet]
chain_id = 31337
providers = [ { id = "p1", url = "http://p1.invalid" } ]

[circuit_breaker]
failure_threshold = {threshold}
"""


async def test_each_reload_result_is_one_line(
    tmp_path: Path, lines: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(RELOAD_CONFIG.replace("{threshold}", "5"))
    state = ReloadState(load_settings(config, env={}), source=str(config))
    events = OpsEvents()
    events.listen(EventLog())
    state.on_record = partial(reloaded, events)

    async def apply(outcome: object) -> None:
        pass

    config.write_text(RELOAD_CONFIG.replace("{threshold}", "3"))
    await reload_once(config, state, apply)
    await reload_once(config, state, apply)  # nothing changed
    config.write_text("[chains.testnet]\nchain_id = 'x'\n")
    await reload_once(config, state, apply)
    assert event_lines(lines, "reload") == [
        "reload applied: generation 2: chains: 1 changed; 1 live keys changed",
        "reload unchanged: generation 2: no change",
        "reload rejected: generation 2: 2 problems",
    ]
    assert [r.levelno for r in lines.records if r.name == "lasso.events"] == [
        logging.INFO,
        logging.INFO,
        logging.ERROR,
    ]
    assert [e.result for e in events.recent if isinstance(e, Reloaded)] == [
        "applied",
        "unchanged",
        "rejected",
    ]
