"""Eligibility invariants over any snapshot, chain facts and capabilities.

* fail open: a non-empty snapshot never comes back empty, and when the input has a
  usable (not OPEN) view, so does the output;
* the output is a subsequence of the input (nothing reordered, nothing invented);
* exclusions hold whenever some usable provider passes them: no excluded provider for
  a head-sensitive target, no unsupported one, none outside the method preference,
  none that does not serve an archival depth;
* ``block_first`` is a permutation that keeps order within each group (has the
  block / not known to) and puts the first group first.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.block_target import BlockTarget, TargetKind
from lasso.core.capabilities import CapabilityBook
from lasso.core.eligibility import (
    ChainFacts,
    _head_sensitive,
    archival_depth,
    block_first,
    select,
)
from lasso.core.router import ChannelView, Tier

pytestmark = pytest.mark.slow

IDS = [f"p{i}" for i in range(6)]
METHOD = "eth_call"
THRESHOLD = 16


@dataclass(frozen=True)
class Caps:
    archival: bool
    unsupported_methods: tuple[str, ...]
    max_logs_block_range: int | None = None
    supports_batch: bool = True
    subscriptions: bool = True


@dataclass
class P:
    capabilities: CapabilityBook


@st.composite
def snapshots(draw: st.DrawFn) -> list[ChannelView]:
    pids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=len(IDS)))
    views = []
    for order, pid in enumerate(pids):
        for transport in draw(st.sampled_from([("http",), ("http", "ws")])):
            views.append(ChannelView(pid, transport, 0, order, draw(st.sampled_from(list(Tier)))))
    return views


targets = st.one_of(
    st.just(BlockTarget(TargetKind.NONE)),
    st.sampled_from(["latest", "pending", "safe", "finalized", "earliest"]).map(
        lambda t: BlockTarget(TargetKind.TAG, tag=t)
    ),
    st.integers(0, 120).map(lambda n: BlockTarget(TargetKind.NUMBER, number=n)),
    st.tuples(st.integers(0, 120), st.integers(0, 120) | st.just("latest")).map(
        lambda r: BlockTarget(TargetKind.RANGE, low=r[0], high=r[1])
    ),
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[ChainFacts, dict[str, P], frozenset[str] | None]:
    head = draw(st.none() | st.integers(0, 120))
    heights = draw(st.dictionaries(st.sampled_from(IDS), st.integers(0, 130)))
    excluded = frozenset(draw(st.sets(st.sampled_from(IDS)))) if head is not None else frozenset()
    providers = {}
    for pid in IDS:
        book = CapabilityBook(Caps(draw(st.booleans()), (METHOD,) if draw(st.booleans()) else ()))
        if draw(st.booleans()):
            book.learn_pruned(draw(st.integers(0, 120)), 0.0, 10.0)
        providers[pid] = P(book)
    preferred = draw(st.none() | st.frozensets(st.sampled_from(IDS)))
    return ChainFacts(head, excluded, heights, 0.0), providers, preferred


def usable(views: object) -> list[ChannelView]:
    return [v for v in views if v.tier is not Tier.OPEN]  # type: ignore[attr-defined]


@given(snapshots(), targets, worlds())
def test_select_fails_open_keeps_order_and_honours_exclusions(
    views: list[ChannelView],
    target: BlockTarget,
    world: tuple[ChainFacts, dict[str, P], frozenset[str] | None],
) -> None:
    facts, providers, preferred = world
    chosen = list(
        select(
            views,
            method=METHOD,
            target=target,
            now=0.0,
            facts=facts,
            providers=providers,
            preferred=preferred,
            archival_threshold=THRESHOLD,
        )
    )
    if views:
        assert chosen
    if usable(views):
        assert usable(chosen)
    it = iter(views)
    assert all(any(c is v for v in it) for c in chosen)  # a subsequence, in order

    # When some usable view passes every stage, no stage fails open: exactly the views
    # passing every stage are chosen.
    book = {pid: p.capabilities for pid, p in providers.items()}
    depth = archival_depth(target, facts.head, THRESHOLD)

    def passes(v: ChannelView) -> bool:
        return (
            (preferred is None or v.provider_id in preferred)
            and book[v.provider_id].supports(METHOD, 0.0)
            and (depth is None or book[v.provider_id].serves_depth(depth, 0.0))
            and not (target.is_head_sensitive() and v.provider_id in facts.excluded)
        )

    if any(passes(v) for v in usable(views)):
        assert chosen == [v for v in views if passes(v)]


@given(snapshots(), st.integers(0, 130), st.dictionaries(st.sampled_from(IDS), st.integers(0, 130)))
def test_block_first_is_a_stable_partition(
    views: list[ChannelView], block: int, heights: dict[str, int]
) -> None:
    channels = tuple(views)
    ordered = block_first(channels, block, heights)
    assert sorted(map(id, ordered)) == sorted(map(id, channels))
    have = [c for c in channels if heights.get(c.provider_id, -1) >= block]
    rest = [c for c in channels if heights.get(c.provider_id, -1) < block]
    assert list(ordered) == have + rest


@given(targets)
def test_the_fast_head_sensitivity_check_agrees_with_block_target(target: BlockTarget) -> None:
    assert _head_sensitive(target) == target.is_head_sensitive()


@given(targets, st.integers(0, 200), st.integers(0, 50))
def test_archival_depth_agrees_with_block_target(
    target: BlockTarget, head: int, threshold: int
) -> None:
    depth = archival_depth(target, head, threshold)
    assert (depth is not None) == target.is_archival(head, threshold)
    if depth is not None:
        lowest = min(r if isinstance(r, int) else 0 for r in target.refs() if r != "latest")
        assert depth == head - lowest
