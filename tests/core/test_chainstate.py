"""ChainState on exact numbers: consensus head, lag, block time, forks, the 30 s window."""

from __future__ import annotations

import msgspec
import pytest

from lasso.core.chainstate import (
    ChainState,
    ChainStatePolicy,
    ChainStatistics,
    ProviderHeadStatistics,
)


def h(number: int, branch: str = "a") -> str:
    return f"0x{branch}{number:062x}"


def report(
    cs: ChainState, pid: str, number: int, now: float, branch: str = "a", parent: str = "a"
) -> None:
    cs.observe(pid, number, h(number, branch), h(number - 1, parent), now)


def test_no_reports_no_head_and_configured_block_time() -> None:
    cs = ChainState(block_time_ms=2000)
    assert cs.consensus_head(0.0) is None
    assert cs.block_time_ms == 2000.0
    assert cs.lag("a", 0.0) is None
    assert cs.excluded_from_head_sensitive("a", 0.0, 3)
    assert cs.statistics(0.0) == ChainStatistics(
        consensus_head=None, block_time_ms=2000.0, measured_block_time=False, providers=()
    )


def test_upper_median_and_lag_with_a_lagging_provider() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "a", 100, 0.0)
    report(cs, "b", 100, 0.0)
    report(cs, "c", 95, 0.0)
    assert cs.consensus_head(0.0) == 100
    assert cs.lag("c", 0.0) == -5
    assert cs.lag("a", 0.0) == 0
    assert cs.excluded_from_head_sensitive("c", 0.0, 3)
    assert not cs.excluded_from_head_sensitive("c", 0.0, 5)
    assert not cs.excluded_from_head_sensitive("a", 0.0, 3)
    # even count: the upper of the two middle heights
    report(cs, "d", 97, 0.0)
    assert cs.consensus_head(0.0) == 100  # sorted 95, 97, 100, 100 -> index 2
    report(cs, "b", 98, 0.0)  # same instant, lower: the higher report of the instant stands
    assert cs.height("b") == 100


def test_two_providers_one_lagging_does_not_hold_the_head_back() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "fast", 50, 0.0)
    report(cs, "slow", 40, 0.0)
    assert cs.consensus_head(0.0) == 50
    assert cs.lag("slow", 0.0) == -10


def test_a_runaway_provider_cannot_drag_the_head() -> None:
    cs = ChainState(block_time_ms=1000)
    for pid in ("a", "b", "c", "d"):
        report(cs, pid, 200, 0.0)
    cs.observe("evil", 10**12, h(7, "e"), None, 0.0)
    assert cs.consensus_head(0.0) == 200  # sorted 200 x4, 10**12 -> index 2
    assert cs.lag("evil", 0.0) == 10**12 - 200
    assert cs.excluded_from_head_sensitive("evil", 0.0, 3)  # ahead beyond tolerance too
    assert not cs.is_forked("evil", 0.0)  # nobody else has its heights to compare


def test_two_runaways_of_five_stay_out_where_p75_would_not() -> None:
    cs = ChainState(block_time_ms=1000)
    for pid in ("a", "b", "c"):
        report(cs, pid, 300, 0.0)
    cs.observe("x", 10**9, h(1, "e"), None, 0.0)
    cs.observe("y", 10**9 + 1, h(2, "e"), None, 0.0)
    # p75 nearest-rank would be sorted[ceil(3.75) - 1] = sorted[3] = 10**9
    assert cs.consensus_head(0.0) == 300


def test_reports_age_out_of_the_30s_window() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "a", 10, 0.0)
    report(cs, "b", 10, 0.0)
    report(cs, "c", 20, 5.0)
    assert cs.consensus_head(5.0) == 10  # sorted 10, 10, 20 -> index 3 // 2 = 1
    assert cs.consensus_head(30.0) == 10
    # a and b are exactly 30 s old at t=30: still live; just past it they are not
    assert cs.consensus_head(30.001) == 20
    assert cs.consensus_head(35.0) == 20
    assert cs.consensus_head(35.001) is None
    assert cs.excluded_from_head_sensitive("a", 30.001, 100)
    assert not cs.excluded_from_head_sensitive("a", 30.0, 100)
    stats = cs.statistics(31.0)
    assert stats.providers[0] == ProviderHeadStatistics(
        provider_id="a", height=10, lag=-10, forked=False, live=False, last_seen=0.0
    )
    assert stats.providers[2].live


def test_a_paused_then_resumed_provider() -> None:
    cs = ChainState(block_time_ms=2000)
    for t in range(0, 21, 2):
        n = 100 + t // 2
        report(cs, "a", n, float(t))
        report(cs, "b", n, float(t))
        if t <= 4:
            report(cs, "c", n, float(t))  # c pauses at block 102 (t=4)
    assert cs.consensus_head(20.0) == 110
    assert cs.lag("c", 20.0) == -8
    assert cs.excluded_from_head_sensitive("c", 20.0, 3)
    # resumed: it reports the head again and is back in
    report(cs, "c", 110, 20.5)
    assert cs.lag("c", 20.5) == 0
    assert not cs.excluded_from_head_sensitive("c", 20.5, 3)
    # paused for longer than the window: not live at all
    assert cs.excluded_from_head_sensitive("c", 50.6, 10**9)


def test_block_time_ema_exact() -> None:
    cs = ChainState(block_time_ms=12_000, policy=ChainStatePolicy(ema_alpha=0.5))
    report(cs, "a", 1, 0.0)
    assert cs.block_time_ms == 12_000.0  # no interval yet: the configured fallback
    report(cs, "a", 2, 2.0)  # 2000 ms: seeds the EMA
    assert cs.block_time_ms == 2000.0
    report(cs, "a", 4, 6.0)  # skipped a block: 4 s / 2 blocks = 2000 ms
    assert cs.block_time_ms == 2000.0
    report(cs, "a", 5, 10.0)  # 4000 ms -> 2000 + 0.5 * 2000
    assert cs.block_time_ms == 3000.0
    report(cs, "a", 5, 11.0)  # no advance: no sample
    assert cs.block_time_ms == 3000.0
    report(cs, "a", 6, 11.0)  # advance from t=10: 1000 ms -> 3000 + 0.5 * -2000
    assert cs.block_time_ms == 2000.0
    assert cs.statistics(11.0).measured_block_time


def test_block_time_ignores_a_runaway() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "a", 10, 0.0)
    report(cs, "b", 10, 0.0)
    report(cs, "c", 10, 0.0)
    cs.observe("c", 10**9, h(3, "e"), None, 1.0)
    assert cs.block_time_ms == 1000.0  # the median did not move
    report(cs, "a", 11, 2.0)
    report(cs, "b", 11, 2.0)
    assert cs.block_time_ms == 2000.0


def test_a_forked_provider_is_forked_until_it_agrees_again() -> None:
    cs = ChainState(block_time_ms=1000)
    for n in (10, 11):
        for pid in ("a", "b", "c"):
            report(cs, pid, n, float(n))
    # c mines its own block 12 (a transaction on that node only)
    report(cs, "a", 12, 12.0)
    report(cs, "b", 12, 12.0)
    report(cs, "c", 12, 12.0, branch="f")
    assert cs.is_forked("c", 12.0)
    assert not cs.is_forked("a", 12.0)
    assert cs.excluded_from_head_sensitive("c", 12.0, 3)  # lag is 0, but forked
    assert cs.lag("c", 12.0) == 0
    # c builds on its fork: still forked (its 13 is ahead, its 12 still disagrees)
    report(cs, "c", 13, 13.0, branch="f", parent="f")
    assert cs.is_forked("c", 13.0)
    report(cs, "a", 13, 13.0)
    report(cs, "b", 13, 13.0)
    assert cs.is_forked("c", 13.0)
    # c reorgs onto the canonical chain at 14: its newest comparable block agrees
    report(cs, "a", 14, 14.0)
    report(cs, "b", 14, 14.0)
    report(cs, "c", 14, 14.0)
    assert not cs.is_forked("c", 14.0)
    assert not cs.excluded_from_head_sensitive("c", 14.0, 3)
    stats = cs.statistics(14.0)
    assert [p.forked for p in stats.providers] == [False, False, False]


def test_parent_hash_reveals_a_fork_before_others_reach_the_height() -> None:
    cs = ChainState(block_time_ms=1000)
    for pid in ("a", "b", "c"):
        report(cs, pid, 20, 0.0)
    # c is ahead at 21, but its parent (20) differs from everyone's 20
    cs.observe("c", 21, h(21, "f"), h(20, "f"), 1.0)
    assert cs.is_forked("c", 1.0)


def test_a_tie_is_no_consensus_hash() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "a", 5, 0.0)
    report(cs, "b", 5, 0.0, branch="f")
    assert not cs.is_forked("a", 0.0)
    assert not cs.is_forked("b", 0.0)
    report(cs, "c", 5, 0.0, branch="f")
    assert cs.is_forked("a", 0.0)
    assert not cs.is_forked("b", 0.0)


def test_hash_window_is_bounded_and_reorg_to_lower_tip_forgets_above() -> None:
    cs = ChainState(block_time_ms=1000, policy=ChainStatePolicy(hash_window=4))
    for n in range(1, 20):
        report(cs, "a", n, float(n))
    hashes = cs._providers["a"].hashes  # the bounded window itself
    assert sorted(hashes) == [16, 17, 18, 19]
    cs.observe("a", 17, h(17, "f"), h(16), 20.0)
    assert cs.height("a") == 17
    assert sorted(hashes) == [16, 17]
    assert hashes[17] == h(17, "f")


def test_statistics_is_a_frozen_msgspec_struct_that_encodes() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "b", 8, 1.0)
    report(cs, "a", 9, 1.0)
    stats = cs.statistics(2.0)
    with pytest.raises(AttributeError):
        stats.consensus_head = 1  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(stats)) == {
        "consensus_head": 9,
        "block_time_ms": 1000.0,
        "measured_block_time": False,
        "providers": [
            {
                "provider_id": "a",
                "height": 9,
                "lag": 0,
                "forked": False,
                "live": True,
                "last_seen": 1.0,
            },
            {
                "provider_id": "b",
                "height": 8,
                "lag": -1,
                "forked": False,
                "live": True,
                "last_seen": 1.0,
            },
        ],
    }


def test_forget_and_bad_input() -> None:
    cs = ChainState(block_time_ms=1000)
    report(cs, "a", 3, 0.0)
    cs.forget("a")
    cs.forget("never")
    assert cs.consensus_head(0.0) is None
    with pytest.raises(ValueError):
        cs.observe("a", -1, h(0), None, 0.0)
    with pytest.raises(ValueError):
        ChainState(block_time_ms=0)
    with pytest.raises(ValueError):
        ChainStatePolicy(window_s=0)
    with pytest.raises(ValueError):
        ChainStatePolicy(hash_window=1)
    with pytest.raises(ValueError):
        ChainStatePolicy(ema_alpha=0)


def test_block_time_counts_only_the_final_head_of_an_instant() -> None:
    for order in (("a", "b", "c"), ("c", "b", "a")):
        cs = ChainState(block_time_ms=1000)
        for pid in ("a", "b", "c"):
            report(cs, pid, 10, 0.0)
        for pid in order:  # the head goes 10 -> 14 in 4 s whatever the order
            report(cs, pid, {"a": 12, "b": 14, "c": 14}[pid], 4.0)
        assert cs.block_time_ms == 1000.0
