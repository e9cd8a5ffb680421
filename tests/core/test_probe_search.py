"""The searches of ``lasso probe``, driven by plain predicates: archival depth and the
eth_getLogs range limit, found exactly and in few probes."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.probe_search import ArchivalSearch, Bisect, RangeLimitSearch


def run_archival(head: int, served: Callable[[int], bool]) -> tuple[ArchivalSearch, list[int]]:
    search, asked = ArchivalSearch(head), []
    while (block := search.next_probe()) is not None:
        asked.append(block)
        search.record(block, served(block))
    return search, asked


def run_range(
    bound: int, accepts: Callable[[int], bool], named: int | None = None
) -> tuple[RangeLimitSearch, list[int]]:
    search, asked = RangeLimitSearch(bound), []
    while (span := search.next_probe()) is not None:
        asked.append(span)
        ok = accepts(span)
        search.record(span, ok, None if ok else named)
        assert len(asked) < 100, asked
    return search, asked


# --- Bisect ----------------------------------------------------------------------------


def test_bisect_finds_the_first_true() -> None:
    bisect = Bisect(0, 100)
    while (x := bisect.next_probe()) is not None:
        bisect.record(x, x >= 37)
    assert bisect.answer == 37


def test_bisect_refuses_an_empty_interval_and_a_probe_outside_it() -> None:
    with pytest.raises(ValueError, match="empty"):
        Bisect(5, 5)
    bisect = Bisect(0, 10)
    with pytest.raises(ValueError, match="outside"):
        bisect.record(10, True)


# --- archival ----------------------------------------------------------------------------


def test_a_node_serving_block_one_is_full_after_two_probes() -> None:
    search, asked = run_archival(1_000, lambda b: True)
    assert (search.full, search.earliest, asked) == (True, 1, [1_000, 1])


def test_a_pruned_node_gives_its_earliest_state_block() -> None:
    # anvil --prune-history=16 at head 80 serves blocks 64..80
    search, asked = run_archival(80, lambda b: b >= 64)
    assert (search.full, search.earliest, search.no_state) == (False, 64, False)
    assert asked[:2] == [80, 1]
    assert len(asked) <= 2 + math.ceil(math.log2(80))


def test_a_node_without_its_heads_state_is_not_searched() -> None:
    search, asked = run_archival(500, lambda b: False)
    assert (search.no_state, search.full, search.earliest, asked) == (True, False, None, [500])


def test_at_head_zero_only_genesis_is_asked() -> None:
    search, asked = run_archival(0, lambda b: True)
    assert (search.full, search.earliest, asked) == (True, 0, [0])


def test_a_node_keeping_only_its_head() -> None:
    search, _ = run_archival(2, lambda b: b >= 2)
    assert (search.full, search.earliest) == (False, 2)


def test_recording_another_block_than_asked_is_a_bug() -> None:
    search = ArchivalSearch(10)
    with pytest.raises(ValueError, match="asked for 10"):
        search.record(9, True)


@given(head=st.integers(1, 30_000_000), data=st.data())
def test_archival_search_is_exact_and_logarithmic(head: int, data: st.DataObject) -> None:
    earliest = data.draw(st.integers(1, head))
    search, asked = run_archival(head, lambda b: b >= earliest)
    if earliest == 1:
        assert search.full
    else:
        assert (search.full, search.earliest) == (False, earliest)
    assert len(asked) <= 2 + math.ceil(math.log2(head + 1))


# --- the eth_getLogs range limit ------------------------------------------------------------


def test_a_node_accepting_the_bound_has_no_limit() -> None:
    search, asked = run_range(100_000, lambda span: True)
    assert (search.unlimited, search.limit, asked) == (True, None, [100_000])


def test_a_stated_limit_is_checked_and_kept() -> None:
    # geth --rpc.rangelimit=50 refuses to - from > 50: it accepts 51 blocks; we keep
    # what it states, which is safe under both readings.
    search, asked = run_range(100_000, lambda span: span <= 51, named=50)
    assert (search.limit, search.named, asked) == (50, True, [100_000, 50])


def test_a_limit_nobody_states_is_bisected() -> None:
    search, asked = run_range(100_000, lambda span: span <= 2_000)
    assert (search.limit, search.named, search.unlimited) == (2_000, False, False)
    assert asked[:2] == [100_000, 1]
    assert len(asked) <= 2 + math.ceil(math.log2(100_000))


def test_a_wrongly_stated_limit_falls_back_to_bisecting() -> None:
    search, _ = run_range(10_000, lambda span: span <= 999, named=1_000)
    assert (search.limit, search.named) == (999, False)


def test_a_node_refusing_even_one_block() -> None:
    search, asked = run_range(100, lambda span: False)
    assert (search.refuses_all, search.limit, asked) == (True, None, [100, 1])


def test_a_bound_of_one_block() -> None:
    assert run_range(1, lambda span: True)[0].unlimited
    assert run_range(1, lambda span: False)[0].refuses_all


def test_a_stated_limit_at_or_above_the_bound_is_ignored() -> None:
    search, _ = run_range(100, lambda span: span <= 40, named=500)
    assert (search.limit, search.named) == (40, False)


@given(bound=st.integers(1, 200_000), data=st.data(), states=st.booleans())
def test_range_search_is_exact(bound: int, data: st.DataObject, states: bool) -> None:
    limit = data.draw(st.integers(1, bound))
    search, asked = run_range(bound, lambda span: span <= limit, limit if states else None)
    if limit == bound:
        assert search.unlimited
    else:
        assert search.limit == limit
        assert search.named == states
    assert len(asked) <= 3 + math.ceil(math.log2(bound + 1))
