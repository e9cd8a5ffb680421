"""Faults the proxy in front of each provider's HTTP puts on the wire: latency, 429s, eth_getLogs
limits with real providers' messages, methods a provider does not support.
"""

from __future__ import annotations

from battle.control import Chaos, Need
from battle.scenario import Arrival, Rate, Scenario
from battle.scenarios.common import FAILOVER, HEALTHY, Timeline, declare, full_providers
from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import logs_limit

# --- 3. latency injection ------------------------------------------------------------------

DELAY_S = 2.0


async def _latency(c: Chaos) -> None:
    t = Timeline()
    target = full_providers(c)[0]
    await t.at(3)
    c.set_delay(target, DELAY_S)
    await t.at(11)
    c.set_delay(target, 0)


LATENCY = Scenario(
    name="latency",
    summary=f"every HTTP answer of one full provider {DELAY_S:g} s late, from 3 s to 11 s",
    duration_s=14,
    chaos=_latency,
    # Load-balanced routing without hedging (the default) keeps sending the slow provider
    # its share, so p99 is the delay itself: bounded by it (no retry or timeout stacked on
    # top), while the median stays with the healthy providers.
    thresholds=declare(
        *HEALTHY,
        "latency_p50_s <= 0.25",
        f"latency_p99_s <= {DELAY_S + 0.5:g}",
    ),
    rate=Rate(20.0, Arrival.CONSTANT),
    needs=frozenset({Need.PROXY}),
)


# --- 4. 429 bursts with Retry-After --------------------------------------------------------


async def _rate_limited(c: Chaos) -> None:
    t = Timeline()
    full = full_providers(c)
    first, both = full[:1], full[:2]
    await t.at(2)
    for provider in first:
        c.set_retry_after(provider, 1)
        c.set_fault(provider, Fault.RATE_LIMITED_429)
    await t.at(5)
    for provider in first:
        c.set_fault(provider, None)
    await t.at(6)
    for provider in both:
        c.set_retry_after(provider, 2)
        c.set_fault(provider, Fault.RATE_LIMITED_429)
    await t.at(10)
    for provider in both:
        c.set_fault(provider, None)


RATE_LIMITED = Scenario(
    name="rate-limited",
    summary="HTTP 429 with Retry-After 1 s on one full provider (2-5 s), then Retry-After 2 s "
    "on two (6-10 s)",
    duration_s=13,
    chaos=_rate_limited,
    # A 429 is answered at once, so failing over costs a round trip; a gateway that slept
    # out the Retry-After in the request path would show p99 >= 2 s.
    thresholds=declare(*HEALTHY, "latency_p99_s <= 1.5", *FAILOVER),
    rate=Rate(20.0),
    needs=frozenset({Need.PROXY}),
    quick=True,
)


# --- 8. eth_getLogs range limits with real provider messages -------------------------------


async def _getlogs_limits(c: Chaos) -> None:
    t = Timeline()
    full = full_providers(c)
    first, second = full[0], full[1 % len(full)]
    await t.at(2)
    c.set_logs_limit(first, logs_limit("geth", 4))  # "exceed maximum block range: 4"
    if second != first:
        c.set_logs_limit(second, logs_limit("alchemy", 8))  # "... up to a 8 block range ..."
    await t.at(7)
    c.set_logs_limit(first, None)
    c.set_logs_limit(first, logs_limit("quicknode", 5))  # "eth_getLogs is limited to a 5 range"
    if second != first:
        c.set_logs_limit(second, None)
        c.set_logs_limit(second, logs_limit("infura", 3))  # "query returned more than 3 results"
    await t.at(11)
    c.set_logs_limit(first, None)
    if second != first:
        c.set_logs_limit(second, None)


GETLOGS_LIMITS = Scenario(
    name="getlogs-limits",
    summary="two full providers refuse wide eth_getLogs as geth (4 blocks) and Alchemy "
    "(8 blocks) do from 2 s, as QuickNode (5 blocks) and Infura (3 results) from 7 s to 11 s",
    duration_s=14,
    chaos=_getlogs_limits,
    # Only eth_getLogs is refused; there is no per-method success SLO, so a gateway passing
    # the refusals through shows as lost getLogs requests in the overall success rate.
    thresholds=declare(*HEALTHY),
    rate=Rate(20.0),
    needs=frozenset({Need.PROXY}),
)


# --- 9. methods unsupported on one provider ------------------------------------------------

#: Methods the workload sends; eth_blockNumber is left alone (no real provider lacks it).
UNSUPPORTED = frozenset(
    {
        "eth_call",
        "eth_estimateGas",
        "eth_getBalance",
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getCode",
        "eth_getLogs",
        "eth_getStorageAt",
        "eth_getTransactionByHash",
        "eth_getTransactionCount",
        "eth_getTransactionReceipt",
        "eth_feeHistory",
    }
)


async def _unsupported_method(c: Chaos) -> None:
    t = Timeline()
    target = full_providers(c)[0]
    await t.at(2)
    c.set_fault(target, Fault.METHOD_NOT_FOUND, methods=UNSUPPORTED)
    await t.at(9)
    c.set_fault(target, None, methods=UNSUPPORTED)


UNSUPPORTED_METHOD = Scenario(
    name="unsupported-method",
    summary=f"one full provider answers -32601 method not found to {len(UNSUPPORTED)} of the "
    "workload's methods from 2 s to 9 s",
    duration_s=12,
    chaos=_unsupported_method,
    thresholds=declare(*HEALTHY),
    rate=Rate(20.0),
    needs=frozenset({Need.PROXY}),
)
