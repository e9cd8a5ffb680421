"""A stream's health tick: staleness by delivery, the breaker, the teardown grace.

Theory of operation. A stream's consumer checks its health every ``TICK_S``
however busy its inbox is (a stream flooded with events it cannot deliver, such
as the heads of a reset chain, is still found stale); only the wait for the
next event is bounded by the tick, handling an event is never cut short. A tick,
in this order:

    no upstream sub.   fail over: subscribe again (the last try failed)
    catching up        a read failed earlier: catch up, then replay the live
                       events held meanwhile (nothing live overtakes a catch-up)
    breaker open       the serving provider's WebSocket breaker: fail over
    provider removed   the serving provider left the chain (a reload): fail over
    stale head         newHeads only: nothing *delivered* for stale_after_blocks
                       block times (at least min_stale_ms), whatever else arrives
                       (heads the stream cannot place, duplicates): fail over
    otherwise          a logs stream's completeness moves to the provider's head
                       less a block, every LOGS_PROGRESS_S (a quiet filter still
                       moves forward)

A fresh upstream subscription starts a fresh stale window. The stream ends
``teardown_grace_ms`` after its last subscriber left (or at once when the chain's
idle budget says so, see :mod:`lasso.core.subs.budget`).
"""

from __future__ import annotations

from lasso.chain import ChainRuntime
from lasso.config import SubscriptionConfig
from lasso.subscriptions.events import Lost
from lasso.subscriptions.serving import Serving

TICK_S = 1.0
LOGS_PROGRESS_S = 30.0


class Liveness:
    """A stream's clocks: its last delivery, its logs' progress, when it emptied."""

    def __init__(self, policy: SubscriptionConfig, block_time_ms: int, now: float) -> None:
        self._policy = policy
        self._block_s = block_time_ms / 1000
        self._delivered_at = now  # the last head delivered (or a fresh start)
        self._empty_since: float | None = None  # set when the last subscriber leaves
        self._progress_at = now

    @property
    def stale_s(self) -> float:
        policy = self._policy
        return max(policy.stale_after_blocks * self._block_s, policy.min_stale_ms / 1000)

    def delivered(self, now: float) -> None:
        """Something was delivered (or a fresh start): a new stale window."""
        self._delivered_at = now

    def stale(self, now: float) -> bool:
        """Nothing delivered for the stale window: what arrives undelivered does not count."""
        return now - self._delivered_at > self.stale_s

    def joined(self) -> None:
        """A subscriber joined: the stream is not empty (any more)."""
        self._empty_since = None

    def emptied(self, now: float) -> bool:
        """The last subscriber left; whether that is news (not already counted)."""
        if self._empty_since is not None:
            return False
        self._empty_since = now
        return True

    def finished(self, now: float) -> bool:
        """Empty for the whole teardown grace."""
        grace_s = self._policy.teardown_grace_ms / 1000
        return self._empty_since is not None and now >= self._empty_since + grace_s

    def logs_progress_due(self, now: float) -> bool:
        """Whether a quiet logs stream should move forward now (then not for a while)."""
        if now < self._progress_at:
            return False
        self._progress_at = now + LOGS_PROGRESS_S
        return True


def loss(
    chain: ChainRuntime, serving: Serving | None, liveness: Liveness, *, heads: bool, now: float
) -> Lost | None:
    """Why a stream that is not catching up must fail over now, if it must."""
    if serving is None:
        return Lost("", "no upstream subscription")
    reason = serving.lost(chain, now)  # left the chain, or its WebSocket breaker opened
    if reason is not None:
        return Lost(serving.provider_id, reason)
    if heads and liveness.stale(now):
        return Lost(serving.provider_id, f"no head delivered for {liveness.stale_s:.0f}s")
    return None
