"""Section ``routing``: the cost of one routing decision.

Times ``lasso.core.router.plan`` (pure and synchronous: no I/O, no awaits)
for 3, 10 and 50 provider channels under every strategy. The channels are
built directly as ``ChannelView``s: all healthy, distinct priorities and
latencies, with one ``RouterState()`` and ``random.Random(1)`` per cell, as
the dispatcher would hold them. Each cell is timed with
``time.perf_counter`` (via ``timeit``, garbage collector off) over enough
calls to take about 50 ms, repeated; the median repeat is reported.
"""

from __future__ import annotations

import random
import statistics
import timeit
from functools import partial

from bench.report import Column, Options, Row, Section, SectionResult
from lasso.core.router import ChannelView, RouterState, Strategy, Tier, plan

PROVIDER_COUNTS = (3, 10, 50)
REPEATS = 7
REPEAT_S = 0.05
METHOD = "eth_blockNumber"


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


def _cell(n: int, strategy: Strategy) -> Row:
    views = channel_views(n, random.Random(n))
    call = partial(
        plan, views, method=METHOD, strategy=strategy, state=RouterState(), rng=random.Random(1)
    )
    samples = time_per_call_us(timeit.Timer(call))
    return {
        "providers": n,
        "strategy": strategy.value,
        "us_per_call": statistics.median(samples),
        "min_us": min(samples),
        "max_us": max(samples),
    }


def run(opts: Options) -> SectionResult:
    rows = [_cell(n, s) for n in PROVIDER_COUNTS for s in Strategy]
    notes = [f"median of {REPEATS} repeats of ~{REPEAT_S * 1000:.0f} ms each; method {METHOD}"]
    return SectionResult(rows, [], notes)


COLUMNS = (
    Column("providers", "providers"),
    Column("strategy", "strategy"),
    Column("us_per_call", "µs/call (median)", ".2f"),
    Column("min_us", "min", ".2f"),
    Column("max_us", "max", ".2f"),
)

SECTION = Section("routing", "Routing decision cost: lasso.core.router.plan()", COLUMNS, run)
