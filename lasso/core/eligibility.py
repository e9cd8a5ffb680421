"""Which providers one request may go to, from chain state and capabilities.

Pure: time is an argument. The router orders what it is given; this module decides
what it is given, and then lets providers that have the asked block go first.

Theory of operation
-------------------
:func:`select` narrows the routing snapshot (one :class:`ChannelView` per provider
channel, in snapshot order) in stages. Each stage keeps the views that pass it, in
their order; a stage that would leave no usable view (none that is not ``OPEN``) is
skipped, so filtering *fails open*: a request is never refused because filtering
left no provider, it is tried on the ones the previous stages kept.

    1. method rules    ``[methods] providers``: a matching method goes only to the
                       listed provider ids
    2. capability      the provider's :class:`~lasso.core.capabilities.CapabilityBook`
                       ``supports(method, now)`` (configured ``unsupported_methods``
                       and learned "method not found", until its TTL)
    3. archival        a target more than ``archival_threshold`` below the consensus
                       head, or at ``earliest``: only providers that
                       ``serves_depth(head - lowest block)`` (``archival = true`` and
                       not learned pruned at that depth)
    4. head-sensitive  ``latest`` / ``pending`` / ``safe`` / ``finalized`` targets:
                       providers lagging more than ``max_lag_blocks``, forked, or not
                       live are left out, but only while the chain has a consensus
                       head (no head tracking, or no report yet: nobody is left out)

Then, for a request naming a specific block ``N`` (a number, or a range's numeric top),
:func:`block_first` moves the planned channels of providers known to be at or past
``N`` (``state.height(pid) >= N``) ahead of the others, each group keeping the
strategy's order. Nothing else is ever reordered.

**Cost.** This runs on every request. The chain facts it needs (consensus head, the
head-sensitive exclusions, each provider's height) are computed once per change of
the chain state and cached in :class:`Eligibility` (recomputed at most every
``max_age_s`` too, since liveness ages with time); a request then pays a few set and
dict lookups. Pinned requests (a provider named in the route) skip all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

import msgspec

from lasso.core.block_target import HEAD_TAGS, BlockTarget, TargetKind
from lasso.core.method_rules import CompiledRules, MethodRulesLike, compile_rules
from lasso.core.router import ChannelView, Tier

__all__ = [
    "ChainFacts",
    "Eligibility",
    "block_first",
    "select",
    "wanted_block",
]

#: The depth given to ``earliest`` when there is no consensus head to measure from.
UNKNOWN_DEPTH = 2**63 - 1


class StateLike(Protocol):
    """What eligibility reads of :class:`~lasso.core.chainstate.ChainState`."""

    @property
    def version(self) -> int: ...
    def consensus_head(self, now: float) -> int | None: ...
    def height(self, provider_id: str) -> int | None: ...
    def excluded_from_head_sensitive(
        self, provider_id: str, now: float, max_lag_blocks: int
    ) -> bool: ...


class BookLike(Protocol):
    def supports(self, method: str, now: float) -> bool: ...
    def serves_depth(self, depth: int, now: float) -> bool: ...


class ProviderLike(Protocol):
    @property
    def capabilities(self) -> BookLike: ...


class ConfigLike(Protocol):
    """The chain's keys eligibility reads (a ``ChainConfig``; the core imports no config)."""

    @property
    def max_lag_blocks(self) -> int: ...
    @property
    def archival_threshold(self) -> int: ...
    @property
    def methods(self) -> MethodRulesLike: ...


class ChainFacts(msgspec.Struct, frozen=True):
    """The chain state one routing decision needs, as of ``computed_at``."""

    head: int | None
    excluded: frozenset[str]  # from head-sensitive requests (empty without a head)
    heights: dict[str, int]  # providers with a known height
    computed_at: float


NO_FACTS = ChainFacts(None, frozenset(), {}, float("-inf"))


def chain_facts(
    state: StateLike, provider_ids: Sequence[str], now: float, max_lag_blocks: int
) -> ChainFacts:
    head = state.consensus_head(now)
    heights = {pid: h for pid in provider_ids if (h := state.height(pid)) is not None}
    excluded = (
        frozenset()
        if head is None
        else frozenset(
            pid
            for pid in provider_ids
            if state.excluded_from_head_sensitive(pid, now, max_lag_blocks)
        )
    )
    return ChainFacts(head, excluded, heights, now)


def select(
    views: Sequence[ChannelView],
    *,
    method: str,
    target: BlockTarget,
    now: float,
    facts: ChainFacts,
    providers: Mapping[str, ProviderLike],
    preferred: frozenset[str] | None,
    archival_threshold: int,
) -> Sequence[ChannelView]:
    """The views to plan on (a subsequence of ``views``); see the module docstring."""
    if not views:
        return views
    current = views
    if preferred is not None:
        current = _narrow(current, [v for v in current if v.provider_id in preferred])
    unsupported = None
    last = None
    for v in current:  # a provider's channels are adjacent in the snapshot: ask it once
        pid = v.provider_id
        if pid != last:
            last = pid
            p = providers.get(pid)
            if p is not None and not p.capabilities.supports(method, now):
                unsupported = {pid} if unsupported is None else unsupported | {pid}
    if unsupported:
        current = _narrow(current, [v for v in current if v.provider_id not in unsupported])
    if target.kind in _NO_REFS:
        return current
    depth = archival_depth(target, facts.head, archival_threshold)
    if depth is not None:
        shallow = _failing(current, providers, lambda book: book.serves_depth(depth, now))
        if shallow:
            current = _narrow(current, [v for v in current if v.provider_id not in shallow])
    excluded = facts.excluded
    if excluded and _head_sensitive(target):
        current = _narrow(current, [v for v in current if v.provider_id not in excluded])
    return current


_NO_REFS = frozenset({TargetKind.NONE, TargetKind.HASH, TargetKind.UNKNOWN})


def _head_sensitive(target: BlockTarget) -> bool:
    """:meth:`BlockTarget.is_head_sensitive`, without building the refs (per request)."""
    if target.kind is TargetKind.TAG:
        return target.tag in HEAD_TAGS
    return target.kind is TargetKind.RANGE and (target.low in HEAD_TAGS or target.high in HEAD_TAGS)


def _failing(
    views: Sequence[ChannelView],
    providers: Mapping[str, ProviderLike],
    check: Callable[[BookLike], bool],
) -> set[str] | None:
    """The ids of the providers of ``views`` whose capabilities fail ``check``."""
    failing: set[str] | None = None
    last = None
    for v in views:
        pid = v.provider_id
        if pid == last:  # a provider's channels are adjacent in the snapshot
            continue
        last = pid
        provider = providers.get(pid)
        if provider is not None and not check(provider.capabilities):
            if failing is None:
                failing = set()
            failing.add(pid)
    return failing


def _narrow(current: Sequence[ChannelView], kept: list[ChannelView]) -> Sequence[ChannelView]:
    """``kept`` if it has a usable view, else ``current`` (fail open)."""
    open_ = Tier.OPEN
    for v in kept:
        if v.tier is not open_:
            return kept
    return current


def archival_depth(target: BlockTarget, head: int | None, threshold: int) -> int | None:
    """How deep below the head an archival target reaches; None if it is not archival.

    Archival as :meth:`BlockTarget.is_archival` says (``earliest``, or a number more
    than ``threshold`` below ``head``); the depth is measured to its lowest block
    (``earliest`` is block 0), or :data:`UNKNOWN_DEPTH` for ``earliest`` without a head.
    """
    lowest: int | None = None
    earliest = False
    for ref in target.refs():
        if isinstance(ref, int):
            lowest = ref if lowest is None or ref < lowest else lowest
        elif ref == "earliest":
            earliest = True
    if earliest:
        return UNKNOWN_DEPTH if head is None else head
    if head is None or lowest is None or head - lowest <= threshold:
        return None
    return head - lowest


def wanted_block(target: BlockTarget) -> int | None:
    """The specific block a request names: its number, or a range's numeric top."""
    kind = target.kind
    if kind is TargetKind.NUMBER:
        return target.number
    if kind is TargetKind.RANGE and isinstance(target.high, int):
        return target.high
    return None


def block_first(
    channels: tuple[ChannelView, ...], block: int, heights: Mapping[str, int]
) -> tuple[ChannelView, ...]:
    """Channels of providers known to have ``block`` first, each group in its order."""
    if not heights:
        return channels
    have = [c for c in channels if heights.get(c.provider_id, -1) >= block]
    if not have or len(have) == len(channels):
        return channels
    return (*have, *(c for c in channels if heights.get(c.provider_id, -1) < block))


class Eligibility:
    """One chain's cached facts and compiled method rules (the per-request fast path)."""

    __slots__ = ("_facts", "_key", "_rules", "max_age_s")

    def __init__(self, max_age_s: float = 1.0) -> None:
        self.max_age_s = max_age_s
        self._facts = NO_FACTS
        self._key: tuple[int, int, int] | None = None
        self._rules: CompiledRules | None = None

    def rules(self, rules: MethodRulesLike) -> CompiledRules:
        """``rules`` compiled, once per rules object (a reload brings a new one)."""
        self._rules = compiled = compile_rules(rules, self._rules)
        return compiled

    def facts(
        self, state: StateLike, provider_ids: Collection[str], now: float, max_lag_blocks: int
    ) -> ChainFacts:
        """The chain facts at ``now``: cached while the state, the number of providers
        (a removal also changes the state) and the lag limit are unchanged and the facts
        are under ``max_age_s`` old."""
        key = (state.version, max_lag_blocks, len(provider_ids))
        cached = self._facts
        if key == self._key and 0.0 <= now - cached.computed_at < self.max_age_s:
            return cached
        self._facts = facts = chain_facts(state, list(provider_ids), now, max_lag_blocks)
        self._key = key
        return facts

    def narrow(
        self,
        views: Sequence[ChannelView],
        *,
        method: str,
        target: BlockTarget,
        now: float,
        state: StateLike,
        providers: Mapping[str, ProviderLike],
        config: ConfigLike,
    ) -> tuple[Sequence[ChannelView], ChainFacts]:
        """:func:`select` on the chain's current facts; the facts too, for :func:`block_first`."""
        facts = self.facts(state, providers.keys(), now, config.max_lag_blocks)
        preferred = self.rules(config.methods).providers_for(method)
        chosen = select(
            views,
            method=method,
            target=target,
            now=now,
            facts=facts,
            providers=providers,
            preferred=preferred,
            archival_threshold=config.archival_threshold,
        )
        return chosen, facts
