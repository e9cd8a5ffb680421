"""The pure router: exact orders per strategy, health tiers, and the plan's budget."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from lasso.core.latency import LatencyStats
from lasso.core.router import (
    STRATEGY_NAMES,
    ChannelView,
    RoutePlan,
    RouterState,
    Strategy,
    Tier,
    plan,
)

H, HO, RL, OPEN = Tier.HEALTHY, Tier.HALF_OPEN, Tier.RATE_LIMITED, Tier.OPEN


def view(
    pid: str,
    *,
    order: int = 0,
    priority: int = 100,
    tier: Tier = H,
    latency: float | None = None,
    samples: int = 0,
    transport: str = "http",
    retry_after_s: float | None = None,
) -> ChannelView:
    return ChannelView(
        provider_id=pid,
        transport=transport,
        priority=priority,
        order=order,
        tier=tier,
        latency_ms=latency,
        samples=samples,
        retry_after_s=retry_after_s,
    )


def measured(pid: str, order: int, latency: float, **kw: Any) -> ChannelView:
    return view(pid, order=order, latency=latency, samples=10, **kw)


def route(
    views: list[ChannelView],
    strategy: Strategy,
    *,
    state: RouterState | None = None,
    rng: random.Random | None = None,
    method: str = "eth_blockNumber",
    **kw: Any,
) -> RoutePlan:
    return plan(
        views,
        method=method,
        strategy=strategy,
        state=state or RouterState(),
        rng=rng or random.Random(1),
        **kw,
    )


def ids(p: RoutePlan) -> list[str]:
    return [c.provider_id for c in p.channels]


def test_strategy_names_are_the_url_spellings() -> None:
    assert sorted(STRATEGY_NAMES) == [
        "fastest",
        "latency-weighted",
        "load-balanced",
        "priority",
        "round-robin",
    ]


# --- priority -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        pytest.param([], [], id="empty"),
        pytest.param([view("a", order=0, priority=1)], ["a"], id="one"),
        pytest.param(
            [view("a", order=0, priority=3), view("b", order=1, priority=1), view("c", order=2)],
            ["b", "a", "c"],
            id="priority-ascending",
        ),
        pytest.param(
            [view("c", order=2, priority=5), view("a", order=0, priority=5), view("b", order=1)],
            ["a", "c", "b"],
            id="ties-by-config-order",
        ),
        pytest.param(
            [
                view("fast", order=0, priority=9, latency=1.0),
                view("slow", order=1, priority=1, latency=900.0),
            ],
            ["slow", "fast"],
            id="latency-ignored",
        ),
    ],
)
def test_priority_orders_by_priority_then_config_order(
    views: list[ChannelView], expected: list[str]
) -> None:
    assert ids(route(views, Strategy.PRIORITY)) == expected


def test_priority_keeps_a_providers_transports_in_input_order() -> None:
    views = [
        view("b", order=1, priority=1, transport="http"),
        view("a", order=0, priority=2, transport="http"),
        view("b", order=1, priority=1, transport="ws"),
    ]
    assert route(views, Strategy.PRIORITY).candidate_names() == ["b:http", "b:ws", "a:http"]


def test_deterministic_strategies_do_not_draw_from_the_rng() -> None:
    rng = random.Random(5)
    before = rng.getstate()
    views = [measured("a", 0, 10.0), view("b", order=1), view("c", order=2, tier=RL)]
    route(views, Strategy.PRIORITY, rng=rng)
    route(views, Strategy.ROUND_ROBIN, rng=rng)
    assert rng.getstate() == before


# --- round-robin ----------------------------------------------------------------------


def test_round_robin_rotates_one_place_per_call_in_config_order() -> None:
    state = RouterState()
    views = [view("c", order=2, priority=1), view("a", order=0), view("b", order=1)]
    orders = [ids(route(views, Strategy.ROUND_ROBIN, state=state)) for _ in range(4)]
    assert orders == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_round_robin_spreads_first_picks_evenly() -> None:
    state = RouterState()
    views = [view(p, order=i) for i, p in enumerate("abcde")]
    firsts = Counter(ids(route(views, Strategy.ROUND_ROBIN, state=state))[0] for _ in range(50))
    assert firsts == dict.fromkeys("abcde", 10)


def test_round_robin_rotates_each_tier_by_the_shared_cursor() -> None:
    state = RouterState()
    views = [
        view("a", order=0),
        view("x", order=1, tier=RL),
        view("b", order=2),
        view("y", order=3, tier=RL),
        view("c", order=4),
    ]
    orders = [ids(route(views, Strategy.ROUND_ROBIN, state=state)) for _ in range(3)]
    assert orders == [
        ["a", "b", "c", "x", "y"],
        ["b", "c", "a", "y", "x"],
        ["c", "a", "b", "x", "y"],
    ]


def test_only_round_robin_advances_the_cursor() -> None:
    state = RouterState()
    views = [view("a", order=0), view("b", order=1)]
    for strategy in Strategy:
        if strategy is not Strategy.ROUND_ROBIN:
            route(views, strategy, state=state)
    assert state.next_cursor() == 0


# --- fastest --------------------------------------------------------------------------


def test_fastest_orders_measured_channels_by_latency() -> None:
    views = [measured("a", 0, 30.0), measured("b", 1, 10.0), measured("c", 2, 20.0)]
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0)) == ["b", "c", "a"]


def test_fastest_keeps_snapshot_order_for_exact_latency_ties() -> None:
    views = [measured("c", 2, 10.0), measured("a", 0, 10.0, priority=1), measured("b", 1, 5.0)]
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0)) == ["b", "c", "a"]


def test_fastest_with_no_samples_anywhere_is_config_order() -> None:
    views = [view("c", order=2), view("a", order=0, priority=700), view("b", order=1)]
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0)) == ["b", "c", "a"]


@pytest.mark.parametrize(
    ("latencies", "expected"),
    [
        # median 20: the newcomer ties the median channel and goes first of the two
        pytest.param([10.0, 20.0, 40.0], ["m0", "new", "m1", "m2"], id="odd-tie-to-newcomer"),
        # median (10 + 40) / 2 = 25
        pytest.param([10.0, 40.0], ["m0", "new", "m1"], id="even-between"),
        # median 50 beats the slow one only
        pytest.param([50.0, 900.0, 1.0], ["m2", "new", "m0", "m1"], id="unsorted"),
        pytest.param([7.0], ["new", "m0"], id="single"),
    ],
)
def test_fastest_places_unmeasured_channels_at_the_median(
    latencies: list[float], expected: list[str]
) -> None:
    views = [measured(f"m{i}", i, lat) for i, lat in enumerate(latencies)]
    views.append(view("new", order=99))
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0)) == expected


def test_fastest_treats_fewer_than_three_samples_as_unmeasured() -> None:
    views = [
        measured("a", 0, 20.0),
        measured("b", 1, 40.0),
        measured("c", 2, 60.0),
        view("lucky", order=3, latency=1.0, samples=2),
    ]
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0)) == [
        "a",
        "lucky",
        "b",
        "c",
    ]
    more = [*views[:3], view("lucky", order=3, latency=1.0, samples=3)]
    assert ids(route(more, Strategy.FASTEST, exploration_share=0.0))[0] == "lucky"


def test_fastest_uses_the_median_the_caller_passes() -> None:
    views = [measured("a", 0, 10.0), measured("b", 1, 50.0), view("new", order=2)]
    order = ids(route(views, Strategy.FASTEST, exploration_share=0.0, method_median_ms=60.0))
    assert order == ["a", "b", "new"]
    order = ids(route(views, Strategy.FASTEST, exploration_share=0.0, method_median_ms=5.0))
    assert order == ["new", "a", "b"]


def test_fastest_median_counts_open_channels_latency() -> None:
    views = [
        measured("a", 0, 10.0),
        measured("b", 1, 50.0),
        measured("down", 2, 40.0, tier=OPEN),
        view("new", order=3),
    ]
    # median of 10, 40, 50 is 40: after a, before b
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0)) == ["a", "new", "b"]


def test_fastest_min_samples_is_configurable() -> None:
    views = [measured("a", 0, 20.0), view("b", order=1, latency=5.0, samples=1)]
    assert ids(route(views, Strategy.FASTEST, exploration_share=0.0, min_samples=1)) == ["b", "a"]


def test_fastest_exploration_puts_the_best_first_one_minus_share_of_the_time() -> None:
    rng = random.Random(42)
    views = [measured("a", 0, 30.0), measured("best", 1, 10.0), measured("c", 2, 20.0)]
    views.append(measured("d", 3, 40.0))
    firsts: Counter[str] = Counter()
    for _ in range(10_000):
        p = route(views, Strategy.FASTEST, rng=rng, exploration_share=0.05)
        firsts[ids(p)[0]] += 1
        assert p.explored == (ids(p)[0] != "best")
        if p.explored:  # the runner-up moved up; the rest keep their order
            rest = [c for c in ["best", "c", "a", "d"] if c != ids(p)[0]]
            assert ids(p)[1:] == rest
    # Binomial(10_000, 0.95) has sd ≈ 22; these bounds are over 4 sd wide.
    assert 9_400 <= firsts["best"] <= 9_600
    for runner_up in "acd":  # each ≈ 0.05 / 3 · 10_000 ≈ 167, sd ≈ 13
        assert 110 <= firsts[runner_up] <= 225


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_exploration_share_bounds(share: float) -> None:
    rng = random.Random(3)
    views = [measured("best", 0, 10.0), measured("b", 1, 20.0)]
    firsts = {
        ids(route(views, Strategy.FASTEST, rng=rng, exploration_share=share))[0] for _ in range(200)
    }
    assert firsts == ({"best"} if share == 0.0 else {"b"})


def test_exploration_stays_inside_the_top_tier() -> None:
    rng = random.Random(9)
    views = [measured("best", 0, 10.0), measured("limited", 1, 1.0, tier=RL)]
    for _ in range(500):
        p = route(views, Strategy.FASTEST, rng=rng, exploration_share=1.0)
        assert ids(p) == ["best", "limited"]
        assert not p.explored


def test_a_provider_slow_at_start_wins_later_through_exploration() -> None:
    """Closed loop: plan, 'call' the first channel, feed its latency back."""

    def run(share: float) -> str:
        rng = random.Random(11)
        stats = {"steady": LatencyStats(), "late": LatencyStats()}
        for t in range(3_000):
            true_ms = {"steady": 50.0, "late": 200.0 if t < 100 else 10.0}
            views = []
            for i, (pid, s) in enumerate(stats.items()):
                ewma = s.ewma_us
                views.append(
                    view(
                        pid,
                        order=i,
                        latency=None if ewma is None else ewma / 1000,
                        samples=s.samples,
                    )
                )
            first = route(views, Strategy.FASTEST, rng=rng, exploration_share=share).channels[0]
            stats[first.provider_id].record_success(
                float(t), int(true_ms[first.provider_id] * 1000)
            )
        final = [
            view(p, order=i, latency=(s.ewma_us or 0) / 1000, samples=s.samples)
            for i, (p, s) in enumerate(stats.items())
        ]
        return ids(route(final, Strategy.FASTEST, exploration_share=0.0))[0]

    assert run(0.05) == "late"
    assert run(0.0) == "steady"  # without exploration the early verdict sticks


# --- latency-weighted and load-balanced (exact frequencies: tests/property) ----------


def test_latency_weighted_with_a_huge_beta_always_picks_the_best() -> None:
    rng = random.Random(4)
    views = [measured("slow", 0, 20.0), measured("best", 1, 10.0)]
    for _ in range(200):
        assert ids(route(views, Strategy.LATENCY_WEIGHTED, rng=rng, lw_beta=2_000.0)) == [
            "best",
            "slow",
        ]


@pytest.mark.parametrize(("median", "expected"), [(1.0, ["new", "a"]), (100.0, ["a", "new"])])
def test_latency_weighted_unmeasured_channels_race_at_the_callers_median(
    median: float, expected: list[str]
) -> None:
    rng = random.Random(6)
    views = [measured("a", 0, 10.0), view("new", order=1)]
    for _ in range(100):
        p = route(views, Strategy.LATENCY_WEIGHTED, rng=rng, lw_beta=500.0, method_median_ms=median)
        assert ids(p) == expected


def test_latency_weighted_survives_zero_latency() -> None:
    views = [measured("zero", 0, 0.0), measured("b", 1, 5.0), view("new", order=2)]
    p = route(views, Strategy.LATENCY_WEIGHTED, rng=random.Random(2))
    assert sorted(ids(p)) == ["b", "new", "zero"]


@pytest.mark.parametrize("strategy", [Strategy.LATENCY_WEIGHTED, Strategy.LOAD_BALANCED])
def test_random_strategies_are_reproducible_from_the_seed(strategy: Strategy) -> None:
    views = [measured(p, i, 10.0 * (i + 1)) for i, p in enumerate("abcdefgh")]
    first = [ids(route(views, strategy, rng=random.Random(77))) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(77)
    assert len({tuple(ids(route(views, strategy, rng=rng))) for _ in range(50)}) > 10


# --- health tiers -----------------------------------------------------------------------

TIERED = [
    measured("rl", 0, 1.0, tier=RL, priority=1),
    measured("open", 1, 1.0, tier=OPEN, priority=1, retry_after_s=2.5),
    measured("ho", 2, 1.0, tier=HO, priority=1),
    measured("h1", 3, 50.0),
    measured("h2", 4, 60.0),
]


@pytest.mark.parametrize("strategy", list(Strategy), ids=lambda s: s.value)
def test_tiers_come_first_and_open_channels_are_excluded(strategy: Strategy) -> None:
    rng = random.Random(8)
    for _ in range(50):
        p = route(TIERED, strategy, rng=rng)
        assert ids(p)[2:] == ["ho", "rl"]
        assert set(ids(p)[:2]) == {"h1", "h2"}
        assert [c.provider_id for c in p.excluded_open] == ["open"]
        assert p.retry_after_ms() is None  # something is still routable


def test_retry_after_when_everything_is_open() -> None:
    views = [
        view("a", order=0, tier=OPEN, retry_after_s=4.0),
        view("b", order=1, tier=OPEN, retry_after_s=1.2345),
        view("c", order=2, tier=OPEN),
    ]
    for strategy in Strategy:
        p = route(views, strategy)
        assert p.channels == ()
        assert len(p.excluded_open) == 3
        assert p.retry_after_ms() == 1234


def test_no_views_at_all() -> None:
    for strategy in Strategy:
        p = route([], strategy)
        assert (p.channels, p.excluded_open, p.retry_after_ms()) == ((), (), None)


# --- the plan's budget ----------------------------------------------------------------


def test_replay_safe_methods_get_max_attempts_and_failover() -> None:
    p = route([view("a")], Strategy.PRIORITY, method="eth_getBalance", max_attempts=4)
    assert (p.replay_safe, p.max_attempts, p.failover, p.deadline_s) == (True, 4, True, 2.0)


def test_non_replayable_methods_get_one_attempt() -> None:
    p = route([view("a"), view("b", order=1)], Strategy.PRIORITY, method="eth_sendRawTransaction")
    assert (p.replay_safe, p.max_attempts, p.failover) == (False, 1, True)


def test_pinned_plans_never_fail_over() -> None:
    p = route([view("a")], Strategy.FASTEST, method="eth_blockNumber", pinned=True)
    assert (p.max_attempts, p.failover) == (1, False)


def test_deadline_overrides_apply() -> None:
    p = route([view("a")], Strategy.PRIORITY, deadline_overrides={"eth_blockNumber": 250})
    assert p.deadline_s == 0.25


@pytest.mark.parametrize(
    "kw", [{"exploration_share": -0.1}, {"exploration_share": 1.5}, {"lw_beta": -1.0}]
)
def test_bad_tuning_is_rejected(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        route([view("a")], Strategy.FASTEST, **kw)


def test_router_state_cursor_starts_at_zero() -> None:
    state = RouterState()
    assert [state.next_cursor() for _ in range(3)] == [0, 1, 2]
