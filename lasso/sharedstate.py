"""State shared by every worker and every instance: the interface the response cache and the
inbound rate limits use when ``[shared] redis_url`` is set.

Only two things are shared (issue 12): the response cache's immutable tier and the inbound
token buckets. Breakers, latency and chain state stay per process. An implementation never
raises into a request: when the shared store is unreachable it answers ``None`` ("unknown":
the caller falls back to its local state), logs once, and reconnects in the background.
``gateway.shared`` holds the process's store, or ``None`` when nothing is shared.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SharedStore"]


class SharedStore(Protocol):
    @property
    def available(self) -> bool:
        """Connected now (a caller may skip the store while it is down)."""
        ...

    async def get_bytes(self, key: str) -> bytes | None:
        """The value stored under ``key``; ``None`` if absent or the store is unreachable."""
        ...

    async def set_bytes(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` (best effort: an unreachable store drops it)."""
        ...

    async def take_tokens(self, key: str, *, rate: float, burst: int, cost: int) -> float | None:
        """Take ``cost`` tokens from the shared bucket ``key`` (refilled at ``rate`` per
        second up to ``burst``), atomically across every instance. Returns 0.0 when taken,
        the seconds until enough tokens when refused, or ``None`` when the store is
        unreachable (the caller then uses its local bucket)."""
        ...
