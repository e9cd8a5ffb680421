"""The pure filter table: ids, bounds, expiry, dedupe and overflow."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.filter_table import (
    Change,
    FilterKind,
    FilterLimits,
    FilterTable,
    LimitReached,
    encode_filter_id,
)

LIMITS = FilterLimits(idle_s=300.0, max_per_client=64, max_total=10_000, max_buffered=10_000)
BLOCKS = FilterKind.BLOCKS
LOGS = FilterKind.LOGS


def install(
    table: FilterTable,
    feed: object = "heads",
    client: object = "10.0.0.1",
    now: float = 0.0,
    limits: FilterLimits = LIMITS,
    span: tuple[int | None, int | None] = (None, None),
) -> str:
    fid, _ = table.install(BLOCKS, feed, client, now, limits, random.Random(len(table)), span)
    return fid


def test_ids_have_geths_form() -> None:
    assert encode_filter_id(0) == "0x0"
    assert encode_filter_id(1) == "0x1"
    assert encode_filter_id(2**128 - 1) == "0x" + "f" * 32
    assert encode_filter_id(0xAB << 100) == "0x" + format(0xAB << 100, "x")
    table = FilterTable()
    ids = {install(table, client=n) for n in range(100)}
    assert len(ids) == 100


class _Repeating(random.Random):
    def __init__(self, values: list[int]) -> None:
        super().__init__(0)
        self.values = values

    def getrandbits(self, k: int) -> int:
        return self.values.pop(0)


def test_a_colliding_id_is_drawn_again() -> None:
    table = FilterTable()
    rng = _Repeating([5, 5, 6])
    first, _ = table.install(BLOCKS, "heads", "a", 0.0, LIMITS, rng)
    second, _ = table.install(BLOCKS, "heads", "a", 0.0, LIMITS, rng)
    assert (first, second) == ("0x5", "0x6")


def test_a_poll_takes_the_changes_once_and_unknown_ids_are_not_found() -> None:
    table = FilterTable()
    fid = install(table)
    table.deliver("heads", [Change("0xa", b'"0xa"'), Change("0xb", b'"0xb"')], 10)
    assert table.poll(fid, 1.0, 300).changes == (b'"0xa"', b'"0xb"')
    assert table.poll(fid, 2.0, 300).changes == ()
    assert table.poll(fid, 2.0, 300).found
    assert not table.poll("0x1234", 2.0, 300).found


def test_feeds_are_shared_and_released_by_the_last_filter() -> None:
    table = FilterTable()
    first, new = table.install(BLOCKS, "heads", "a", 0.0, LIMITS, random.Random(1))
    second, again = table.install(BLOCKS, "heads", "b", 0.0, LIMITS, random.Random(2))
    assert (new, again) == (True, False)
    assert table.uninstall(first) == (True, [])
    assert table.uninstall(first) == (False, [])
    assert table.uninstall(second) == (True, ["heads"])
    assert table.feeds() == []


def test_expiry_after_the_idle_time_without_a_poll() -> None:
    table = FilterTable()
    polled, idle = install(table, feed="a"), install(table, feed="b")
    assert table.poll(polled, 200.0, 300).found
    assert table.expire(299.9, 300) == []
    assert table.expire(300.0, 300) == ["b"]  # exactly idle_s after its last poll
    assert not table.poll(idle, 300.0, 300).found
    assert table.poll(polled, 499.0, 300).found
    assert not table.poll(polled, 799.0, 300).found  # expired before any sweep ran
    assert table.expire(799.0, 300) == ["a"]
    assert table.statistics().expired == 2


def test_criteria_are_for_log_filters_and_do_not_refresh_the_idle_clock() -> None:
    table = FilterTable()
    rng = random.Random(3)
    logs, _ = table.install(LOGS, "l", "c", 0.0, LIMITS, rng, criteria=b"[{}]")
    blocks = install(table)
    assert table.criteria(logs, 100.0, 300) == b"[{}]"
    assert table.criteria(blocks, 100.0, 300) is None
    assert table.criteria(logs, 300.0, 300) is None
    assert not table.poll(logs, 300.0, 300).found


def test_overflow_drops_the_filter_rather_than_losing_changes() -> None:
    table = FilterTable()
    slow, fast = install(table), install(table)
    assert table.deliver("heads", [Change(n, n) for n in range(3)], max_buffered=3) == []
    assert table.poll(fast, 1.0, 300).changes == (0, 1, 2)
    assert table.deliver("heads", [Change(3, 3)], max_buffered=3) == []  # slow: 4 > 3
    assert not table.poll(slow, 1.0, 300).found
    assert table.poll(fast, 1.0, 300).changes == (3,)
    assert table.statistics().overflowed == 1


def test_a_logs_span_bounds_its_changes() -> None:
    table = FilterTable()
    fid = install(table, feed="l", span=(5, 7))
    table.deliver("l", [Change(n, n, number=n) for n in range(3, 10)], 100)
    assert table.poll(fid, 0.0, 300).changes == (5, 6, 7)


def test_per_client_and_total_bounds() -> None:
    limits = FilterLimits(max_per_client=2, max_total=3)
    table = FilterTable()
    ids = [install(table, client="a", limits=limits) for _ in range(2)]
    with pytest.raises(LimitReached, match="per client"):
        install(table, client="a", limits=limits)
    install(table, client="b", limits=limits)
    with pytest.raises(LimitReached, match="at most 3 filters"):
        install(table, client="c", limits=limits)
    table.uninstall(ids[0])
    install(table, client="a", limits=limits)  # room again
    assert table.statistics().refused == 2


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.booleans()), max_size=80))
def test_bounds_hold_for_any_sequence(ops: list[tuple[str, bool]]) -> None:
    limits = FilterLimits(max_per_client=3, max_total=7)
    table = FilterTable()
    mine: dict[str, list[str]] = {c: [] for c in "abcd"}
    for client, add in ops:
        if add:
            before = (len(mine[client]), len(table))
            try:
                mine[client].append(install(table, client=client, limits=limits))
            except LimitReached:
                assert before[0] == 3 or before[1] == 7
        elif mine[client]:
            assert table.uninstall(mine[client].pop(0))[0]
        assert all(len(ids) <= 3 for ids in mine.values())
        assert len(table) == sum(len(ids) for ids in mine.values()) <= 7


_log = st.tuples(st.integers(0, 5), st.integers(0, 2))  # (block, log index)


@given(
    st.lists(st.tuples(_log, st.booleans()), max_size=60),
    st.lists(st.integers(0, 60), max_size=6),
)
def test_no_change_is_lost_or_repeated_however_it_is_fed_and_polled(
    feed: list[tuple[tuple[int, int], bool]], polls: list[int]
) -> None:
    """The same block fed twice, a backfill overlapping live items, a reorg's removal and
    the log's return: each state change of a log reaches the filter exactly once."""
    table = FilterTable()
    fid = install(table, feed="l")
    expected: list[tuple[tuple[int, int], bool]] = []
    state: dict[tuple[int, int], bool] = {}
    got: list[tuple[tuple[int, int], bool]] = []
    stops = set(polls)
    for step, (key, removed) in enumerate(feed):
        if state.get(key, not removed) is not removed:
            state[key] = removed
            expected.append((key, removed))
        table.deliver("l", [Change(key, (key, removed), number=key[0], state=removed)], 1000)
        if step in stops:
            got += table.poll(fid, 0.0, 300).changes
    got += table.poll(fid, 0.0, 300).changes
    assert got == expected
