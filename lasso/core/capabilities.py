"""What one provider can serve: configured, then learned at run time.

Pure: time is an argument. One :class:`CapabilityBook` per provider, shared by its
channels (what HTTP learns about a method holds for its WebSocket too).

    configured   ``archival``, ``unsupported_methods`` (names or ``prefix*``),
                 ``max_logs_block_range``, ``supports_batch``, ``subscriptions``
                 from the provider's settings (``retune`` replaces them live and
                 keeps what was learned)
    learned      a method the provider answered "method not found" / "not
                 supported" is skipped until ``ttl`` passes; a pruned-state answer
                 for a block ``depth`` below the consensus head marks the provider
                 as serving no state at that depth or deeper (also for the TTL);
                 an ``eth_getLogs`` range error teaches its range limit (kept: a
                 provider's limit is a fact of its configuration)

Routing asks :meth:`supports` and :meth:`serves_depth`; ``eth_getLogs`` splitting
asks :meth:`logs_range_limit`. Nothing here ever touches a breaker: a capability
miss is not a failure of the provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from lasso.core.methods import Allowlist

__all__ = ["CapabilityBook", "CapabilityStatistics", "ProviderCaps"]


class ProviderCaps(Protocol):
    """The configured capabilities (a ``ProviderConfig`` has them; the core imports no config)."""

    @property
    def archival(self) -> bool: ...
    @property
    def unsupported_methods(self) -> Sequence[str]: ...
    @property
    def max_logs_block_range(self) -> int | None: ...
    @property
    def supports_batch(self) -> bool: ...
    @property
    def subscriptions(self) -> bool: ...


class CapabilityStatistics(msgspec.Struct, frozen=True):
    """One provider's capabilities as ``/health`` shows them at ``now``."""

    archival: bool
    pruned_depth: int | None
    unsupported_methods: tuple[str, ...]
    learned_unsupported: dict[str, float]  # method -> seconds until it is tried again
    max_logs_block_range: int | None
    learned_logs_block_range: int | None
    supports_batch: bool
    subscriptions: bool


class CapabilityBook:
    """One provider's capabilities; see the module docstring."""

    __slots__ = ("_config", "_configured", "_learned", "_logs_limit", "_pruned")

    def __init__(self, config: ProviderCaps) -> None:
        self._config = config
        self._configured = Allowlist.parse(config.unsupported_methods)
        self._learned: dict[str, float] = {}  # method -> expiry
        self._pruned: tuple[int, float] | None = None  # (depth, expiry)
        self._logs_limit: int | None = None

    def retune(self, config: ProviderCaps) -> None:
        """New configured capabilities; what was learned stays."""
        self._config = config
        self._configured = Allowlist.parse(config.unsupported_methods)

    # -- methods -------------------------------------------------------------------

    def supports(self, method: str, now: float) -> bool:
        """Neither configured as unsupported nor learned so within its TTL."""
        if self._configured.allows(method):
            return False
        expiry = self._learned.get(method)
        if expiry is None:
            return True
        if now >= expiry:
            del self._learned[method]
            return True
        return False

    def learn_unsupported(self, method: str, now: float, ttl_s: float) -> None:
        self._learned[method] = now + ttl_s

    # -- history -------------------------------------------------------------------

    @property
    def archival(self) -> bool:
        return self._config.archival

    def serves_depth(self, depth: int, now: float) -> bool:
        """Whether to send it a request for state ``depth`` blocks below the head.

        Only for archival requests: ``archival = false`` serves none, and a learned
        pruning depth rules out that depth and deeper until its TTL passes.
        """
        if not self._config.archival:
            return False
        pruned = self._pruned
        if pruned is None:
            return True
        if now >= pruned[1]:
            self._pruned = None
            return True
        return depth < pruned[0]

    def learn_pruned(self, depth: int, now: float, ttl_s: float) -> None:
        """It answered a pruned-state error for state ``depth`` below the head."""
        depth = max(depth, 0)
        current = self._pruned
        if current is not None and now < current[1]:
            depth = min(depth, current[0])
        self._pruned = (depth, now + ttl_s)

    # -- eth_getLogs -----------------------------------------------------------------

    def logs_range_limit(self) -> int | None:
        """The widest ``eth_getLogs`` range (blocks, inclusive) to send it, if limited."""
        limits = [x for x in (self._config.max_logs_block_range, self._logs_limit) if x]
        return min(limits) if limits else None

    def learn_logs_range_limit(self, limit: int) -> None:
        if limit >= 1 and (self._logs_limit is None or limit < self._logs_limit):
            self._logs_limit = limit

    # -- the rest ----------------------------------------------------------------------

    @property
    def subscriptions(self) -> bool:
        """Whether ``eth_subscribe`` may be used on its WebSocket."""
        return self._config.subscriptions

    def statistics(self, now: float) -> CapabilityStatistics:
        pruned = self._pruned
        return CapabilityStatistics(
            archival=self._config.archival,
            pruned_depth=pruned[0] if pruned is not None and now < pruned[1] else None,
            unsupported_methods=tuple(self._config.unsupported_methods),
            learned_unsupported={
                m: round(expiry - now, 3)
                for m, expiry in sorted(self._learned.items())
                if expiry > now
            },
            max_logs_block_range=self._config.max_logs_block_range,
            learned_logs_block_range=self._logs_limit,
            supports_batch=self._config.supports_batch,
            subscriptions=self._config.subscriptions,
        )
