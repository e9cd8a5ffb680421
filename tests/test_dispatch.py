"""Failover scenarios on virtual time: exact attempt schedules on scripted fake nodes."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

from lasso.callmeta import CallMeta
from lasso.chain import ChainRuntime
from lasso.chaos.faults import Fault
from lasso.core.breaker import CircuitState
from lasso.core.classify import Reason
from lasso.core.jsonrpc import Call
from lasso.core.router import Strategy
from lasso.core.routes import RouteSpec
from lasso.dispatch import Outcome, agreed_error, dispatch
from lasso.errors import (
    NoProviderAvailable,
    UpstreamProtocolError,
    UpstreamRpcError,
    UpstreamTimeout,
)
from lasso.gateway import Gateway
from tests.conftest import FakeFleet

BLOCK_NUMBER = Call("eth_blockNumber", b"[]", b"1")
BALANCE = Call("eth_getBalance", b'["0x0000000000000000000000000000000000000001","latest"]', b"1")
SEND = Call("eth_sendRawTransaction", b'["0xf86c"]', b"1")


def chain_of(gateway: Gateway) -> ChainRuntime:
    return gateway.profiles["default"]["testnet"]


async def call(
    chain: ChainRuntime,
    request: Call,
    *,
    hedge_after_s: float | None = None,
    provider: str | None = None,
) -> tuple[bytes, Outcome]:
    plan = chain.plan(
        request.method,
        trio.current_time(),
        strategy=Strategy.PRIORITY,
        provider=provider,
        params=request.params,
    )
    outcome = Outcome()
    return await dispatch(chain, request, plan, outcome, hedge_after_s=hedge_after_s), outcome


async def test_a_hung_provider_gets_60_percent_of_the_deadline(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.HANG
    start = trio.current_time()
    result, outcome = await call(chain_of(gateway), BLOCK_NUMBER)
    assert result == b'"0x64"'
    assert trio.current_time() - start == pytest.approx(0.6)
    assert outcome.provider == "p2"
    assert [(a.provider, a.category) for a in outcome.attempts] == [("p1", "provider_failure")]


async def test_everything_hung_fails_within_the_deadline(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.HANG
    start = trio.current_time()
    with pytest.raises(NoProviderAvailable) as info:
        await call(chain_of(gateway), BLOCK_NUMBER)
    # p1 gets 0.6 s, p2 the rest less a 10 ms answer margin; p3 would start with < 25 ms
    # left, so never does. The error is back inside the 1 s deadline.
    assert trio.current_time() - start == pytest.approx(0.99)
    assert info.value.code == -32000
    assert [a["provider"] for a in info.value.data["attempts"]] == ["p1", "p2"]
    assert fleet.nodes["p3"].calls == []


async def test_failover_stops_at_three_providers(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.HTML_500
    with pytest.raises(NoProviderAvailable) as info:
        await call(chain_of(gateway), BALANCE)
    assert [a["category"] for a in info.value.data["attempts"]] == ["provider_failure"] * 3
    assert "All providers failed for eth_getBalance" in info.value.message


async def test_rate_limited_provider_is_demoted_for_retry_after(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].queued.append(Fault.RATE_LIMITED_429)  # Retry-After: 7
    _, outcome = await call(chain, BALANCE)
    assert outcome.provider == "p2"
    breaker = chain.providers["p1"].channel("http").breaker
    assert breaker.statistics(trio.current_time()).consecutive_failures == 0  # no penalty
    _, outcome = await call(chain, BALANCE)
    assert outcome.provider == "p2"  # p1 is in the rate-limited tier
    await trio.sleep(7.01)
    _, outcome = await call(chain, BALANCE)
    assert outcome.provider == "p1"


async def test_two_timeouts_open_the_breaker_then_it_recovers(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    breaker = chain.providers["p1"].channel("http").breaker
    fleet.nodes["p1"].fault = Fault.HANG
    await call(chain, BLOCK_NUMBER)
    await call(chain, BLOCK_NUMBER)
    opened = trio.current_time()
    assert breaker.state(opened) is CircuitState.OPEN
    start = trio.current_time()
    _, outcome = await call(chain, BLOCK_NUMBER)
    assert trio.current_time() == start  # the open provider is never tried
    assert outcome.provider == "p2"
    assert outcome.attempts == []
    fleet.nodes["p1"].fault = None
    fleet.nodes["p1"].calls.clear()
    deadline = breaker.statistics(trio.current_time()).recovery_deadline
    assert deadline is not None
    assert 60.0 <= deadline - opened <= 63.0  # recovery timeout plus at most 5% jitter
    await trio.sleep_until(deadline)
    assert breaker.state(trio.current_time()) is CircuitState.HALF_OPEN
    await trio.sleep(2.0)  # the provider's own probes (one a second) close it, no traffic needed
    assert fleet.nodes["p1"].calls == ["eth_chainId", "eth_chainId"]
    assert breaker.state(trio.current_time()) is CircuitState.CLOSED
    _, outcome = await call(chain, BLOCK_NUMBER)
    assert outcome.provider == "p1"


async def test_all_breakers_open_gives_retry_after(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    # The whole chain is down: every connection is refused. (This test used RESET, a
    # connection lost after the request was sent: since a request may lose at most two
    # providers that way before it stops and is quarantined (lasso.core.poison), the same
    # request can no longer reach every provider three times. Refused connections never
    # carried the request, so they fail over to every provider, as before.)
    for node in fleet.nodes.values():
        node.fault = Fault.REFUSED
    for _ in range(3):  # network errors open a breaker after 3
        with pytest.raises(NoProviderAvailable):
            await call(chain, BALANCE)
    with pytest.raises(NoProviderAvailable) as info:
        await call(chain, BALANCE)
    retry_after_ms = info.value.data["retry_after_ms"]
    # The whole chain is down: it probes every few hundred ms (lasso.core.recovery), so
    # clients are told to come back after the probing interval, not the breakers' minute.
    assert retry_after_ms == 500
    assert "All circuit breakers are open" in info.value.message


async def test_non_replayable_write_is_sent_once_even_on_500(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.HTML_500
    with pytest.raises(UpstreamProtocolError) as info:
        await call(chain_of(gateway), SEND)
    assert info.value.code == -32002
    assert fleet.nodes["p1"].calls == ["eth_sendRawTransaction"]
    assert fleet.nodes["p2"].calls == fleet.nodes["p3"].calls == []


async def test_non_replayable_write_fails_over_when_it_never_left(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.REFUSED
    result, outcome = await call(chain_of(gateway), SEND)
    assert result.startswith(b'"0x')
    assert outcome.provider == "p2"


async def test_deterministic_error_after_exactly_one_call(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.REVERT
    with pytest.raises(UpstreamRpcError) as info:
        await call(chain_of(gateway), BALANCE)
    assert info.value.category == "deterministic"
    assert sum(len(node.calls) for node in fleet.nodes.values()) == 1


async def test_capability_error_fails_over_without_penalty(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].fault = Fault.METHOD_NOT_FOUND
    _, outcome = await call(chain, BALANCE)
    assert outcome.provider == "p2"
    assert [a.category for a in outcome.attempts] == ["capability"]
    stats = chain.providers["p1"].channel("http").breaker.statistics(trio.current_time())
    assert stats.consecutive_failures == 0


async def test_pinned_provider_gets_one_attempt(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p2"].fault = Fault.HANG
    start = trio.current_time()
    with pytest.raises(UpstreamTimeout) as info:
        await call(chain_of(gateway), BALANCE, provider="p2")
    assert info.value.code == -32007
    assert trio.current_time() - start == pytest.approx(1.99)  # the whole deadline, no failover
    assert fleet.nodes["p1"].calls == fleet.nodes["p3"].calls == []


async def test_hedged_read_starts_the_next_after_the_delay(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].delay_s = 0.5
    fleet.nodes["p2"].delay_s = 0.05
    start = trio.current_time()
    _, outcome = await call(chain, BALANCE, hedge_after_s=0.1)
    assert trio.current_time() - start == pytest.approx(0.15)  # p2 started at 0.1, took 0.05
    assert outcome.provider == "p2"
    stats = chain.providers["p1"].channel("http").breaker.statistics(trio.current_time())
    assert stats.consecutive_failures == 0  # the cancelled loser is not a failure
    assert fleet.nodes["p3"].calls == []


async def test_hedge_failure_starts_the_next_early(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.HTML_500
    fleet.nodes["p1"].delay_s = 0.02
    start = trio.current_time()
    _, outcome = await call(chain_of(gateway), BALANCE, hedge_after_s=0.3)
    assert trio.current_time() - start == pytest.approx(0.02)  # not 0.3
    assert outcome.provider == "p2"


async def test_hedged_deterministic_error_stops_the_race(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.REVERT
    fleet.nodes["p1"].delay_s = 0.2
    fleet.nodes["p2"].fault = Fault.HANG
    start = trio.current_time()
    with pytest.raises(UpstreamRpcError):
        await call(chain_of(gateway), BALANCE, hedge_after_s=0.1)
    assert trio.current_time() - start == pytest.approx(0.2)


async def test_latency_book_records_only_usable_successes(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    fleet.nodes["p1"].delay_s = 0.010
    fleet.nodes["p2"].fault = Fault.HTML_500
    await call(chain, BALANCE)
    entries = {e.provider_id: e.stats for e in chain.latency.statistics().entries}
    assert set(entries) == {"p1"}
    assert msgspec.structs.asdict(entries["p1"])["samples"] == 1
    assert entries["p1"].ewma_us == pytest.approx(10_000, abs=1)


async def test_a_quarantined_provider_is_routed_around(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = chain_of(gateway)
    supervisor = chain.providers["p1"].supervisor
    assert supervisor is not None
    for _ in range(6):  # six crashes inside the window
        supervisor._record_crash(RuntimeError("boom"))
    _, outcome = await call(chain, BALANCE)
    assert outcome.provider == "p2"
    assert fleet.nodes["p1"].calls == []
    await trio.sleep(61)  # the restarts age out of the 60 s window
    _, outcome = await call(chain, BALANCE)
    assert outcome.provider == "p1"


async def test_a_hedged_first_attempt_keeps_to_its_share(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.HANG
    start = trio.current_time()
    _, outcome = await call(
        chain_of(gateway), BALANCE, hedge_after_s=5.0
    )  # a delay past the deadline
    assert outcome.provider == "p2"
    assert trio.current_time() - start == pytest.approx(1.2)  # 60% of the 2 s deadline


async def test_a_busy_websocket_channel_fails_over(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    from lasso.errors import UpstreamNetworkError

    chain = chain_of(gateway)

    async def busy(method: str, params: bytes, transport: str = "http") -> tuple[bytes, int]:
        raise UpstreamNetworkError("WebSocket busy", provider_id="p1", never_sent=True)

    chain.providers["p1"].request = busy  # type: ignore[method-assign]
    for hedge in (None, 0.1):
        _, outcome = await call(chain, SEND if hedge is None else BALANCE, hedge_after_s=hedge)
        assert outcome.provider == "p2"


# --- an error every provider agrees on is the node's own answer (issue 7 item 12) ------


async def test_an_error_every_provider_gives_is_returned_unchanged(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.METHOD_NOT_FOUND
    with pytest.raises(UpstreamRpcError) as info:
        await call(chain_of(gateway), BALANCE)
    assert info.value.raw_error == b'{"code":-32601,"message":"Method not found: eth_getBalance"}'
    assert sum(len(node.calls) for node in fleet.nodes.values()) == 3  # a capability: each tried


async def test_the_attempts_of_an_agreed_error_go_to_the_routing_metadata(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for node in fleet.nodes.values():
        node.fault = Fault.METHOD_NOT_FOUND
    target = gateway.resolve(RouteSpec(chain="testnet"), "/rpc/testnet")
    meta = CallMeta.start(target, "eth_getBalance")
    answer = await gateway.answer_call(target, BALANCE, meta)
    assert answer == (
        b'{"jsonrpc":"2.0","id":1,"error":'
        b'{"code":-32601,"message":"Method not found: eth_getBalance"}}'
    )
    attempts = meta.to_dict("r")["attempts"]
    assert sorted((a["provider"], a["category"]) for a in attempts) == [
        ("p1", "capability"),
        ("p2", "capability"),
        ("p3", "capability"),
    ]


async def test_errors_that_disagree_are_still_no_provider_available(
    gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].fault = Fault.METHOD_NOT_FOUND
    fleet.nodes["p2"].fault = Fault.HTML_500
    fleet.nodes["p3"].fault = Fault.METHOD_NOT_FOUND
    with pytest.raises(NoProviderAvailable):
        await call(chain_of(gateway), BALANCE)


def rpc_error(code: int, category: str, reason: str = "") -> UpstreamRpcError:
    raw = b'{"code":%d,"message":"m"}' % code
    return UpstreamRpcError(
        "m", provider_id="p", rpc_code=code, raw_error=raw, category=category, reason=reason
    )


def test_agreement_rules() -> None:
    cap, det = "capability", "deterministic"
    same = [("ws", rpc_error(-32001, cap)), ("http", rpc_error(-32001, cap))]
    assert agreed_error(same) is same[1][1]  # the HTTP attempt's words
    mixed_codes = [("http", rpc_error(-32601, cap)), ("http", rpc_error(-32001, cap))]
    assert agreed_error(mixed_codes) is mixed_codes[0][1]  # nobody could serve it
    failures = [("http", rpc_error(-32603, "provider_failure"))] * 2
    assert agreed_error(failures) is failures[0][1]  # the same error from every attempt
    assert agreed_error([("http", rpc_error(-32603, "provider_failure")), *mixed_codes]) is None
    timeout = UpstreamTimeout("t", provider_id="p")
    assert agreed_error([("http", rpc_error(-32601, cap)), ("http", timeout)]) is None
    stray = rpc_error(-32600, cap, Reason.UNATTRIBUTED)
    assert agreed_error([("ws", stray), ("http", rpc_error(-32600, det))]) is None
    assert agreed_error([]) is None
