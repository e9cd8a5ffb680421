"""Chain state: the consensus head, per-provider lag, block time and fork detection.

Pure: every decision takes ``now`` (seconds, any monotonic origin) from the caller;
the I/O shell feeds it one head report per ``newHeads`` notification or head poll with
``observe(provider_id, number, block_hash, parent_hash, now)``.

Theory of operation
-------------------
**Height.** A provider's height is the number of its latest report: a node's newest
head is its truth, even when a reorg makes it lower. Two reports from one provider at
the same instant count as one, at the higher number, so report order within an instant
never matters.

**Live window.** A provider is *live* while its last report is at most ``window_s``
(30 s) old: ``now - last_seen <= window_s``. Only live providers vote.

**Consensus head** is the upper median of the live providers' heights: with their
heights sorted ascending, ``sorted[n // 2]``. Why not the 75th percentile the issue
suggests: an order statistic at index ``k`` stays inside the honest providers' range
while the ``f`` liars number at most ``min(k, n - 1 - k)``; the p75 index
(``ceil(0.75·n) - 1``) tolerates only about ``n / 4`` runaways (with 5 providers, 2
runaways reporting block 10**12 would become the head). The median index is the only
one that tolerates *any* minority (``f < n / 2``) lying high or low, and taking the
upper of the two middle values for even ``n`` still leans to the front of the chain
(with 2 providers it is the higher one, so one lagging node cannot hold the head back).
No live provider means no consensus head (``None``).

**Lag** is ``height - consensus_head``: negative when behind, positive when ahead.

**Block time** is an EMA (``ema_alpha``) of the consensus head's advance, sampled on
``observe``: when the head moves from ``c1`` (first reached at ``t1``) to ``c2 > c1`` at
``t2 > t1`` the sample is ``(t2 - t1) / (c2 - c1)``, so a head poll that skips blocks
still measures per-block time and a runaway provider (which cannot move the median)
cannot distort it. Only the consensus head at the end of an instant counts (each report
of an instant recomputes the sample from the state before the instant), so block time
too is free of report order within an instant. The first sample seeds the EMA; until
then, and as the fallback, the configured ``block_time_ms`` is reported.

**Fork detection.** Each provider keeps the hashes of its chain for its most recent
``hash_window`` (64) heights: a report records ``number -> block_hash`` and, from
``parent_hash``, ``number - 1 -> parent_hash``, and forgets its own entries above
``number`` (after a reorg to a lower tip those blocks are no longer on its chain). The
*consensus hash* at a height is the hash held there by strictly more live providers than
any other hash (a tie has none). A provider is ``forked`` when, at the highest height of
its window that some *other* live provider also has a hash for and that has a consensus
hash, its own hash differs. So it stays forked while its newest comparable block
disagrees and clears as soon as a newer one agrees again. This is a routing fact only:
it never touches the breaker.

**Head-sensitive exclusion.** ``excluded_from_head_sensitive`` is true for a provider
that is not live (no report in the window, or never seen), is forked, or whose lag is
beyond ``max_lag_blocks`` in either direction: behind means it would serve an old head,
ahead by more than the tolerance means the consensus has not followed it (a runaway),
and serving its head would make the gateway's head jump and later go backwards.

Keeping the head served to clients monotonic is the caller's job (a floor on what it
answers); the consensus head itself may go down when providers age out.
"""

from __future__ import annotations

from collections import Counter

import msgspec

__all__ = [
    "ChainState",
    "ChainStatePolicy",
    "ChainStatistics",
    "ProviderHeadStatistics",
]


class ChainStatePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    window_s: float = 30.0
    hash_window: int = 64
    ema_alpha: float = 0.2

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError("window_s must be > 0")
        if self.hash_window < 2:
            raise ValueError("hash_window must be >= 2")
        if not 0 < self.ema_alpha <= 1:
            raise ValueError("ema_alpha must be in (0, 1]")


class ProviderHeadStatistics(msgspec.Struct, frozen=True):
    provider_id: str
    height: int
    lag: int | None  # None while there is no consensus head
    forked: bool
    live: bool
    last_seen: float


class ChainStatistics(msgspec.Struct, frozen=True):
    consensus_head: int | None
    block_time_ms: float
    measured_block_time: bool  # False while block_time_ms is the configured fallback
    providers: tuple[ProviderHeadStatistics, ...]


class _Provider:
    __slots__ = ("hashes", "height", "last_seen")

    def __init__(self, height: int, last_seen: float) -> None:
        self.height = height
        self.last_seen = last_seen
        self.hashes: dict[int, str] = {}


class ChainState:
    """Head reports in; consensus head, lag, block time and fork state out."""

    __slots__ = (
        "_base",
        "_block_time_ms",
        "_configured_block_time_ms",
        "_instant",
        "_policy",
        "_providers",
        "_ref",
        "_version",
    )

    def __init__(self, block_time_ms: float, policy: ChainStatePolicy | None = None) -> None:
        if not block_time_ms > 0:
            raise ValueError("block_time_ms must be > 0")
        self._policy = policy or ChainStatePolicy()
        self._configured_block_time_ms = float(block_time_ms)
        self._block_time_ms: float | None = None
        self._providers: dict[str, _Provider] = {}
        self._ref: tuple[int, float] | None = None  # (consensus head, when first reached)
        self._instant: float | None = None  # the time of the last report
        # (_ref, _block_time_ms) as they were before the reports of that instant
        self._base: tuple[tuple[int, float] | None, float | None] = (None, None)
        self._version = 0  # bumped by every report and removal (see ``version``)

    # -- input ------------------------------------------------------------------------

    def observe(
        self,
        provider_id: str,
        number: int,
        block_hash: str,
        parent_hash: str | None,
        now: float,
    ) -> None:
        """Record one head report from ``provider_id``."""
        if number < 0:
            raise ValueError("block number must be >= 0")
        self._version += 1
        state = self._providers.get(provider_id)
        if state is None:
            state = self._providers[provider_id] = _Provider(number, now)
        elif now == state.last_seen and number < state.height:
            # same instant, lower number: the higher report of this instant stands
            # (order-independent); its hashes still teach us about this height
            self._record_hashes(state, number, block_hash, parent_hash, truncate=False)
            self._sample_block_time(now)
            return
        else:
            state.height = number
            state.last_seen = max(state.last_seen, now)
        self._record_hashes(state, number, block_hash, parent_hash, truncate=True)
        self._sample_block_time(now)

    def set_configured_block_time_ms(self, block_time_ms: float) -> None:
        """A reload's ``block_time_ms``: the fallback until (and unless) one is measured."""
        if not block_time_ms > 0:
            raise ValueError("block_time_ms must be > 0")
        self._configured_block_time_ms = float(block_time_ms)

    def forget(self, provider_id: str) -> None:
        """Drop a provider that was removed from the chain."""
        self._version += 1
        self._providers.pop(provider_id, None)

    def _record_hashes(
        self,
        state: _Provider,
        number: int,
        block_hash: str,
        parent_hash: str | None,
        *,
        truncate: bool,
    ) -> None:
        hashes = state.hashes
        if truncate:
            for height in [h for h in hashes if h > number]:
                del hashes[height]
        hashes[number] = block_hash.lower()
        if parent_hash is not None and number > 0:
            hashes[number - 1] = parent_hash.lower()
        floor = state.height - self._policy.hash_window
        for height in [h for h in hashes if h <= floor]:
            del hashes[height]

    def _sample_block_time(self, now: float) -> None:
        # Recomputed from the state before this instant on every report of the instant,
        # so only the instant's final consensus head counts, whatever the report order.
        if self._instant != now:
            self._instant = now
            self._base = (self._ref, self._block_time_ms)
        ref, ema = self._base
        head = self.consensus_head(now)
        if head is not None and ref is None:
            ref = (head, now)
        elif head is not None and ref is not None and head > ref[0]:
            ref_head, ref_time = ref
            dt = now - ref_time
            ref = (head, now)
            if dt > 0:
                sample_ms = dt * 1000.0 / (head - ref_head)
                ema = sample_ms if ema is None else ema + self._policy.ema_alpha * (sample_ms - ema)
        self._ref, self._block_time_ms = ref, ema

    # -- queries ----------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes with every report and removal: what is derived from the state at one
        ``now`` (routing caches it, :mod:`lasso.core.eligibility`) is still valid while
        it is unchanged and time has not moved on much."""
        return self._version

    def _live(self, now: float) -> dict[str, _Provider]:
        window = self._policy.window_s
        return {pid: p for pid, p in self._providers.items() if now - p.last_seen <= window}

    def consensus_head(self, now: float) -> int | None:
        """The upper median of the live providers' heights, or ``None`` with none live."""
        heights = sorted(p.height for p in self._live(now).values())
        if not heights:
            return None
        return heights[len(heights) // 2]

    @property
    def block_time_ms(self) -> float:
        """The measured block time, or the configured one until the first sample."""
        if self._block_time_ms is None:
            return self._configured_block_time_ms
        return self._block_time_ms

    def height(self, provider_id: str) -> int | None:
        """The provider's last reported height (live or not), ``None`` if never seen."""
        state = self._providers.get(provider_id)
        return None if state is None else state.height

    def lag(self, provider_id: str, now: float) -> int | None:
        """``height - consensus_head``; ``None`` if never seen or no consensus head."""
        state = self._providers.get(provider_id)
        head = self.consensus_head(now)
        if state is None or head is None:
            return None
        return state.height - head

    def is_forked(self, provider_id: str, now: float) -> bool:
        state = self._providers.get(provider_id)
        if state is None:
            return False
        return self._forked(provider_id, state, self._live(now))

    def _forked(self, provider_id: str, state: _Provider, live: dict[str, _Provider]) -> bool:
        others = [p for pid, p in live.items() if pid != provider_id]
        for height in sorted(state.hashes, reverse=True):
            if not any(height in p.hashes for p in others):
                continue
            votes = Counter(p.hashes[height] for p in live.values() if height in p.hashes)
            if provider_id not in live:
                votes[state.hashes[height]] += 1
            ranked = votes.most_common(2)
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue  # a tie: no consensus hash here, look further down
            return state.hashes[height] != ranked[0][0]
        return False

    def excluded_from_head_sensitive(
        self, provider_id: str, now: float, max_lag_blocks: int
    ) -> bool:
        """Whether to keep ``provider_id`` out of head-sensitive requests right now."""
        state = self._providers.get(provider_id)
        if state is None or now - state.last_seen > self._policy.window_s:
            return True
        head = self.consensus_head(now)
        if head is None or abs(state.height - head) > max_lag_blocks:
            return True
        return self._forked(provider_id, state, self._live(now))

    def statistics(self, now: float) -> ChainStatistics:
        live = self._live(now)
        head = self.consensus_head(now)
        providers = tuple(
            ProviderHeadStatistics(
                provider_id=pid,
                height=state.height,
                lag=None if head is None else state.height - head,
                forked=self._forked(pid, state, live),
                live=pid in live,
                last_seen=state.last_seen,
            )
            for pid, state in sorted(self._providers.items())
        )
        return ChainStatistics(
            consensus_head=head,
            block_time_ms=self.block_time_ms,
            measured_block_time=self._block_time_ms is not None,
            providers=providers,
        )
