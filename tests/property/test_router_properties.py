"""Router invariants over any snapshot, and the random strategies' distributions.

For any channel views (tiers, latencies, samples, priorities) and every strategy:

* an OPEN channel is never planned, and every OPEN channel is in ``excluded_open``;
* every other channel is planned exactly once;
* tiers never go down the plan (HEALTHY, then HALF_OPEN, then RATE_LIMITED).

Then, with a seeded rng, the random strategies' first picks converge on the exact
probabilities: ``w_i / Σw`` for latency-weighted, uniform over the healthy tier for
load-balanced.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.router import ChannelView, RoutePlan, RouterState, Strategy, Tier, plan

pytestmark = pytest.mark.slow  # Hypothesis and 20_000-draw convergence runs

latencies = st.none() | st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@st.composite
def snapshots(draw: st.DrawFn) -> list[ChannelView]:
    n = draw(st.integers(min_value=0, max_value=12))
    views = []
    for i in range(n):
        latency = draw(latencies)
        views.append(
            ChannelView(
                provider_id=f"p{i}",
                transport=draw(st.sampled_from(["http", "ws"])),
                priority=draw(st.integers(min_value=0, max_value=3)),
                order=draw(st.integers(min_value=0, max_value=n)),
                tier=draw(st.sampled_from(Tier)),
                latency_ms=latency,
                samples=0 if latency is None else draw(st.integers(min_value=0, max_value=6)),
                retry_after_s=draw(st.none() | st.floats(min_value=0.0, max_value=600.0)),
            )
        )
    return views


def route(views: list[ChannelView], strategy: Strategy, rng: random.Random, **kw: Any) -> RoutePlan:
    return plan(
        views,
        method="eth_getBalance",
        strategy=strategy,
        state=RouterState(),
        rng=rng,
        **kw,
    )


@given(
    views=snapshots(),
    strategy=st.sampled_from(Strategy),
    seed=st.integers(min_value=0, max_value=2**32),
    share=st.sampled_from([0.0, 0.05, 1.0]),
    beta=st.sampled_from([0.0, 3.0, 50.0]),
    median=st.none() | st.floats(min_value=0.0, max_value=1e6),
)
def test_every_strategy_plans_each_routable_channel_once_in_tier_order(
    views: list[ChannelView],
    strategy: Strategy,
    seed: int,
    share: float,
    beta: float,
    median: float | None,
) -> None:
    p = plan(
        views,
        method="eth_getBalance",
        strategy=strategy,
        state=RouterState(),
        rng=random.Random(seed),
        exploration_share=share,
        lw_beta=beta,
        method_median_ms=median,
    )
    assert all(c.tier is not Tier.OPEN for c in p.channels)
    assert Counter(id(c) for c in p.channels) == Counter(
        id(v) for v in views if v.tier is not Tier.OPEN
    )
    assert [id(c) for c in p.excluded_open] == [id(v) for v in views if v.tier is Tier.OPEN]
    tiers = [c.tier.value for c in p.channels]
    assert tiers == sorted(tiers)


@given(views=snapshots(), seed=st.integers(min_value=0, max_value=2**32))
def test_fastest_without_exploration_is_latency_sorted_among_measured(
    views: list[ChannelView], seed: int
) -> None:
    p = route(views, Strategy.FASTEST, random.Random(seed), exploration_share=0.0)
    for tier in (Tier.HEALTHY, Tier.HALF_OPEN, Tier.RATE_LIMITED):
        known = [
            c.latency_ms
            for c in p.channels
            if c.tier is tier and c.latency_ms is not None and c.samples >= 3
        ]
        assert known == sorted(known)


@given(views=snapshots(), seed=st.integers(min_value=0, max_value=2**32))
def test_round_robin_is_a_rotation_of_config_order_within_each_tier(
    views: list[ChannelView], seed: int
) -> None:
    state = RouterState()
    for _ in range(3):
        p = plan(
            views,
            method="eth_call",
            strategy=Strategy.ROUND_ROBIN,
            state=state,
            rng=random.Random(seed),
        )
        for tier in (Tier.HEALTHY, Tier.HALF_OPEN, Tier.RATE_LIMITED):
            got = [c.order for c in p.channels if c.tier is tier]
            # a rotation of config order: some rotation back makes it sorted
            assert not got or any(got[k:] + got[:k] == sorted(got) for k in range(len(got)))


def first_pick_frequencies(
    views: list[ChannelView], strategy: Strategy, draws: int, **kw: Any
) -> dict[str, float]:
    rng = random.Random(2024)
    firsts = Counter(
        route(views, strategy, rng, **kw).channels[0].provider_id for _ in range(draws)
    )
    return {pid: n / draws for pid, n in firsts.items()}


def measured(pid: str, order: int, latency: float, tier: Tier = Tier.HEALTHY) -> ChannelView:
    return ChannelView(pid, "http", 100, order, tier, latency_ms=latency, samples=20)


@pytest.mark.parametrize(
    ("latency_ms", "beta", "weights"),
    [
        pytest.param([10.0, 20.0, 40.0], 3.0, [1.0, 1 / 8, 1 / 64], id="beta-3"),
        pytest.param([10.0, 20.0, 40.0], 1.0, [1.0, 1 / 2, 1 / 4], id="beta-1"),
        pytest.param([10.0, 20.0, 40.0], 0.0, [1.0, 1.0, 1.0], id="beta-0-uniform"),
        pytest.param([5.0, 5.0, 6.0, 50.0], 3.0, [1.0, 1.0, (5 / 6) ** 3, 1e-3], id="four"),
    ],
)
def test_latency_weighted_first_picks_converge_to_the_weights(
    latency_ms: list[float], beta: float, weights: list[float]
) -> None:
    views = [measured(f"p{i}", i, lat) for i, lat in enumerate(latency_ms)]
    freq = first_pick_frequencies(views, Strategy.LATENCY_WEIGHTED, 20_000, lw_beta=beta)
    total = sum(weights)
    for i, w in enumerate(weights):
        assert freq.get(f"p{i}", 0.0) == pytest.approx(w / total, abs=0.02)


def test_latency_weighted_unmeasured_channels_weigh_as_the_median() -> None:
    views = [
        measured("fast", 0, 10.0),
        measured("slow", 1, 40.0),
        ChannelView("new", "http", 100, 2, Tier.HEALTHY, latency_ms=None, samples=0),
    ]
    # median of 10 and 40 is 25: weights 1, (10/40)^3, (10/25)^3
    weights = {"fast": 1.0, "slow": 1 / 64, "new": 0.4**3}
    total = sum(weights.values())
    freq = first_pick_frequencies(views, Strategy.LATENCY_WEIGHTED, 20_000)
    for pid, w in weights.items():
        assert freq[pid] == pytest.approx(w / total, abs=0.02)


def test_latency_weighted_second_place_is_weighted_too() -> None:
    """The whole order is a race, not just the first pick: given p0 first, p1 runs
    second with probability w1 / (w1 + w2)."""
    views = [measured(f"p{i}", i, lat) for i, lat in enumerate([10.0, 20.0, 40.0])]
    rng = random.Random(99)
    seconds: Counter[str] = Counter()
    for _ in range(20_000):
        order = [c.provider_id for c in route(views, Strategy.LATENCY_WEIGHTED, rng).channels]
        if order[0] == "p0":
            seconds[order[1]] += 1
    n = sum(seconds.values())
    assert seconds["p1"] / n == pytest.approx((1 / 8) / (1 / 8 + 1 / 64), abs=0.02)


def test_load_balanced_first_picks_are_uniform_within_the_healthy_tier() -> None:
    views = [
        measured("a", 0, 10.0),
        measured("b", 1, 500.0),
        measured("c", 2, 20.0),
        measured("d", 3, 30.0),
        measured("ho", 4, 1.0, Tier.HALF_OPEN),
        measured("rl", 5, 1.0, Tier.RATE_LIMITED),
        measured("open", 6, 1.0, Tier.OPEN),
    ]
    freq = first_pick_frequencies(views, Strategy.LOAD_BALANCED, 20_000)
    assert set(freq) == {"a", "b", "c", "d"}
    for pid in "abcd":
        assert freq[pid] == pytest.approx(0.25, abs=0.02)
