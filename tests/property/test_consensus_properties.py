"""The consensus head under adversarial height reports, and order independence.

* With ``f < n / 2`` providers reporting any heights (huge, zero, anything) and the
  rest honest, the consensus head stays within ``[min honest, max honest]``.
* Reports within one instant give the same consensus head, heights, lags and block
  time in any order (and, with one report per provider, the same fork states and
  statistics).
* The upper median beats p75: a minority of runaways can drag p75, never the median.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lasso.core.chainstate import ChainState

pytestmark = pytest.mark.slow  # Hypothesis

heights = st.integers(min_value=0, max_value=2**63)


def _hash(pid: str, number: int) -> str:
    return f"0x{pid}{number:x}"


@st.composite
def honest_and_adversaries(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    honest = draw(st.lists(heights, min_size=1, max_size=9))
    adversaries = draw(st.lists(heights, max_size=len(honest) - 1))
    assert len(adversaries) < (len(honest) + len(adversaries)) / 2
    return honest, adversaries


@settings(max_examples=300, deadline=None)
@given(honest_and_adversaries(), st.randoms(use_true_random=False))
def test_a_minority_of_liars_cannot_move_the_head_out_of_the_honest_range(
    reports: tuple[list[int], list[int]], rng: random.Random
) -> None:
    honest, adversaries = reports
    entries = [(f"h{i}", n) for i, n in enumerate(honest)]
    entries += [(f"x{i}", n) for i, n in enumerate(adversaries)]
    rng.shuffle(entries)
    cs = ChainState(block_time_ms=1000)
    for pid, n in entries:
        cs.observe(pid, n, _hash(pid, n), None, 0.0)
    head = cs.consensus_head(0.0)
    assert head is not None
    assert min(honest) <= head <= max(honest)


@st.composite
def instant_reports(draw: st.DrawFn) -> list[tuple[str, int, str, str | None]]:
    pids = draw(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=12))
    out: list[tuple[str, int, str, str | None]] = []
    for pid in pids:
        n = draw(st.integers(min_value=1, max_value=8))
        branch = draw(st.sampled_from("ab"))
        parent = draw(st.none() | st.sampled_from("ab"))
        out.append((pid, n, f"0x{branch}{n}", None if parent is None else f"0x{parent}{n - 1}"))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(1, 8)), max_size=10),
    instant_reports(),
    st.permutations(range(12)),
)
def test_consensus_does_not_depend_on_report_order_within_one_instant(
    history: list[tuple[str, int]],
    instant: list[tuple[str, int, str, str | None]],
    order: list[int],
) -> None:
    def build(batch: list[tuple[str, int, str, str | None]]) -> ChainState:
        cs = ChainState(block_time_ms=1000)
        for pid, n in history:  # an earlier, fixed past
            cs.observe(pid, n, f"0xa{n}", f"0xa{n - 1}", 1.0)
        for pid, n, block_hash, parent in batch:
            cs.observe(pid, n, block_hash, parent, 2.0)
        return cs

    permuted = [instant[i] for i in order if i < len(instant)]
    one, two = build(instant), build(permuted)
    assert one.consensus_head(2.0) == two.consensus_head(2.0)
    assert one.block_time_ms == two.block_time_ms
    for pid in "abcdefg":
        assert one.lag(pid, 2.0) == two.lag(pid, 2.0)
        assert one.height(pid) == two.height(pid)
    # with one report per provider in the instant, fork states are order-free too
    if len({r[0] for r in instant}) == len(instant):
        assert one.statistics(2.0) == two.statistics(2.0)


def test_two_runaways_of_five_would_drag_p75_but_not_the_median() -> None:
    reported = [300, 300, 300, 10**9, 10**9]
    p75 = sorted(reported)[-(-len(reported) * 3 // 4) - 1]
    assert p75 == 10**9
    cs = ChainState(block_time_ms=1000)
    for i, n in enumerate(reported):
        cs.observe(str(i), n, _hash(str(i), n), None, 0.0)
    assert cs.consensus_head(0.0) == 300
