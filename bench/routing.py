"""Section ``routing``: the cost of one routing decision.

Three rows per cell: ``plan`` times ``lasso.core.router.plan`` alone (pure and
synchronous: no I/O, no awaits); ``decision`` times what a request really pays,
``ChainRuntime.plan``: building the snapshot (each channel's breaker state,
rate-limit state and latency statistics for the method) and then ``plan``;
``decision+state`` is the same with head tracking's chain state in place (one
provider lagging) for an ``eth_getBalance`` at ``latest``, so eligibility
(:mod:`lasso.core.eligibility`: lag exclusion, capabilities, archival depth) is
paid as a request pays it. All for 3, 10 and 50 provider channels under every
strategy. The channels are built directly as ``ChannelView``s: all healthy,
distinct priorities and latencies, with one ``RouterState()`` and
``random.Random(1)`` per cell, as the dispatcher would hold them. Each cell is timed with
``time.perf_counter`` (via ``timeit``, garbage collector off) over enough
calls to take about 50 ms, repeated; the median repeat is reported.
"""

from __future__ import annotations

import random
import statistics
import timeit
from functools import partial

from bench.report import Column, Options, Row, Section, SectionResult
from lasso.chain import ChainRuntime
from lasso.config import parse_settings
from lasso.core.latency import LatencyKey
from lasso.core.router import ChannelView, RouterState, Strategy, Tier, plan

PROVIDER_COUNTS = (3, 10, 50)
REPEATS = 7
REPEAT_S = 0.05
METHOD = "eth_blockNumber"
BALANCE = b'["0x00000000000000000000000000000000000000aa","latest"]'


def channel_views(n: int, rng: random.Random) -> list[ChannelView]:
    return [
        ChannelView(
            provider_id=f"provider-{i}",
            transport="http",
            priority=i % 4,
            order=i,
            tier=Tier.HEALTHY,
            latency_ms=rng.uniform(20.0, 250.0),
            samples=100,
        )
        for i in range(n)
    ]


def time_per_call_us(call: timeit.Timer) -> list[float]:
    """Per-call microseconds of each repeat, each repeat lasting about REPEAT_S."""
    number = 100
    while (elapsed := call.timeit(number)) < REPEAT_S / 5:
        number *= 4
    number = max(1, round(number * REPEAT_S / elapsed))
    return [call.timeit(number) / number * 1e6 for _ in range(REPEATS)]


def chain_runtime(n: int) -> ChainRuntime:
    """A chain of ``n`` providers with latency evidence, as a running gateway holds it."""
    providers = ",\n".join(
        f'{{ id = "provider-{i}", url = "http://p{i}.invalid", priority = {i % 4} }}'
        for i in range(n)
    )
    settings = parse_settings(
        f"[chains.bench]\nchain_id = 1\nproviders = [\n{providers}\n]\n", env={}
    )
    rng = random.Random(n)
    chain = ChainRuntime(
        "bench", settings.default_profile.chains["bench"], routing=settings.routing, rng=rng
    )
    for provider in chain.providers.values():
        latency_us = int(rng.uniform(20_000, 250_000))
        for _ in range(20):
            chain.latency.record_success(LatencyKey(provider.id, METHOD, "http"), 0.0, latency_us)
    return chain


def _row(n: int, strategy: Strategy, what: str, call: timeit.Timer) -> Row:
    samples = time_per_call_us(call)
    return {
        "providers": n,
        "strategy": strategy.value,
        "what": what,
        "us_per_call": statistics.median(samples),
        "min_us": min(samples),
        "max_us": max(samples),
    }


def _cells(n: int, strategy: Strategy) -> list[Row]:
    views = channel_views(n, random.Random(n))
    pure = partial(
        plan, views, method=METHOD, strategy=strategy, state=RouterState(), rng=random.Random(1)
    )
    chain = chain_runtime(n)
    decision = partial(chain.plan, METHOD, 1.0, strategy=strategy, provider=None, params=b"[]")
    tracked = chain_runtime(n)
    for i, pid in enumerate(tracked.providers):
        height = 1000 - 10 * (i == 0)  # the first provider lags
        tracked.state.observe(pid, height, f"0x{height:064x}", f"0x{height - 1:064x}", 1.0)
    with_state = partial(
        tracked.plan, "eth_getBalance", 1.0, strategy=strategy, provider=None, params=BALANCE
    )
    return [
        _row(n, strategy, "plan", timeit.Timer(pure)),
        _row(n, strategy, "decision", timeit.Timer(decision)),
        _row(n, strategy, "decision+state", timeit.Timer(with_state)),
    ]


def run(opts: Options) -> SectionResult:
    rows = [row for n in PROVIDER_COUNTS for s in Strategy for row in _cells(n, s)]
    notes = [f"median of {REPEATS} repeats of ~{REPEAT_S * 1000:.0f} ms each; method {METHOD}"]
    return SectionResult(rows, [], notes)


COLUMNS = (
    Column("providers", "providers"),
    Column("strategy", "strategy"),
    Column("what", "what"),
    Column("us_per_call", "µs/call (median)", ".2f"),
    Column("min_us", "min", ".2f"),
    Column("max_us", "max", ".2f"),
)

SECTION = Section("routing", "Routing decision cost: plan() and a whole decision", COLUMNS, run)
