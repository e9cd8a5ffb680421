"""The response cache's Trio shell: lookup, coalesced misses, storing, reorg eviction.

:meth:`ResponseCache.serve` answers one call that may be cached:

1. canonical key: the chain, the method and the params re-encoded by msgspec (a
   client's whitespace never splits a key); a hit returns the stored ``result`` bytes
   (the gateway splices the client's id in, ``jsonrpc.result_body``);
2. on a miss, the pure policy (:mod:`lasso.core.cache_policy`) says whether the call
   may be kept; if not, the call runs as usual;
3. if so, concurrent identical misses share one *flight*: the first starts the upstream
   call in a task of the gateway's service nursery (not in its own task, so its client
   hanging up never cancels the others' answer), every caller waits for it and gets the
   same bytes, or the same error (no retry storm against a failing provider). The
   flight is cancelled when its last waiter leaves: cancellation still flows from the
   clients to the upstream;
4. the answer is kept if :func:`~lasso.core.cache_policy.admit` allows it and no new
   block (``HEAD`` tier) or reorg (every tier) was seen while it was fetched.

With a shared store (``gateway.shared``), entries whose blocks are all final (and
``STATIC`` ones) are also read from it after a local miss and written to it after a
fetch; entries about blocks a reorg could still replace stay local, since a reorg is
only seen (and evicted) per process.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import msgspec
import trio

from lasso.cache.store import CacheStatistics, CacheStore
from lasso.config.schema import CacheConfig
from lasso.core.cache_policy import Candidate, ChainFacts, Keep, Tier, admit, classify, may_cache
from lasso.core.reorg_ledger import ReorgLedger
from lasso.sharedstate import SharedStore

__all__ = ["Fetch", "ResponseCache"]

log = logging.getLogger("lasso.cache")

Fetch = Callable[[], Awaitable[bytes]]

#: The shared store's key prefix (one namespace per chain under it).
SHARED_PREFIX = "lasso:cache:"
#: How long a lookup in the shared store may take before the call goes upstream instead.
SHARED_READ_S = 0.25


class _Flight:
    __slots__ = ("done", "error", "from_shared", "result", "scope", "waiters")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.scope = trio.CancelScope()
        self.result: bytes | None = None
        self.error: Exception | None = None
        self.from_shared = False  # answered from the shared store, not upstream
        self.waiters = 0


class _Abandoned(Exception):
    """The flight was cancelled (its last waiter left, or its task's owner went away)."""


class _SharedEntry(msgspec.Struct, array_like=True):
    low: int | None
    high: int | None
    hashes: tuple[str, ...]
    static: bool
    value: msgspec.Raw


class ResponseCache:
    """One per gateway: every chain's entries, reorg ledgers and flights."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self.store = CacheStore(config.max_bytes)
        self.ledgers: dict[str, ReorgLedger] = {}
        self._flights: dict[tuple[str, bytes], _Flight] = {}

    def reconfigure(self, config: CacheConfig) -> None:
        self.config = config
        self.store.resize(config.max_bytes)

    def statistics(self) -> CacheStatistics:
        return self.store.statistics()

    # -- chain facts ----------------------------------------------------------------

    def observe_head(
        self, chain: str, number: int, block_hash: str, parent_hash: str | None
    ) -> None:
        """One head report of the chain (``ChainRuntime.observe_head``)."""
        ledger = self._ledger(chain)
        before = ledger.new_blocks
        reorg = ledger.observe(number, block_hash, parent_hash)
        if reorg is not None:
            depth = self.config.finality_depth_blocks
            gone = self.store.reorg(chain, reorg, depth)
            log.info(
                "cache: reorg on %s from block %d: %d entries evicted",
                chain,
                reorg.lowest(depth),
                gone,
            )
        elif ledger.new_blocks != before:
            self.store.new_block(chain)

    def _ledger(self, chain: str) -> ReorgLedger:
        ledger = self.ledgers.get(chain)
        if ledger is None:
            ledger = self.ledgers[chain] = ReorgLedger()
        return ledger

    # -- serving --------------------------------------------------------------------

    def wants(self, method: str) -> bool:
        """Whether ``serve`` could do anything for ``method`` (cheap; no params parsed)."""
        config = self.config
        return config.enabled and may_cache(
            method, config.methods.get(method), latest=config.latest
        )

    async def serve(
        self,
        chain: str,
        method: str,
        params: bytes,
        head: int | None,
        fetch: Fetch,
        services: trio.Nursery,
        shared: SharedStore | None = None,
        *,
        head_ttl_ms: int | None = None,
    ) -> tuple[bytes, str]:
        """The answer's result bytes and ``"hit"`` or ``"miss"``; raises what ``fetch`` does."""
        try:
            canonical = msgspec.json.encode(msgspec.json.decode(params)) if params else b"null"
        except (msgspec.DecodeError, ValueError, RecursionError):
            return await fetch(), "miss"  # the node answers malformed params itself
        key = (chain, b"%b\n%b" % (method.encode(), canonical))
        ledger = self._ledger(chain)
        now = trio.current_time()
        value = self.store.get(key, now, ledger.new_blocks)
        if value is not None:
            self.store.count(chain, method, "hits")
            return value, "hit"
        self.store.count(chain, method, "misses")
        facts = ChainFacts(head=head, finality_depth=self.config.finality_depth_blocks)
        config = self.config
        candidate = classify(
            method, params, facts, config.methods.get(method), latest=config.latest
        )
        if candidate is None:
            return await fetch(), "miss"
        flight = self._flights.get(key)
        if flight is not None:
            self.store.count(chain, method, "coalesced")
        else:
            flight = self._flights[key] = _Flight()
            if candidate.tier is Tier.HEAD and head_ttl_ms is not None:
                # also bounded in time: a chain whose head reports stopped keeps no
                # `latest` answer longer than a block time
                candidate = msgspec.structs.replace(candidate, ttl_ms=head_ttl_ms)
            lead = partial(self._lead, key, method, candidate, facts, fetch, flight, shared)
            services.start_soon(lead)
        try:
            result = await self._wait(key, flight)
            return result, "hit" if flight.from_shared else "miss"
        except _Abandoned:  # its leader's task was cancelled: fetch for this client alone
            return await fetch(), "miss"

    async def _wait(self, key: tuple[str, bytes], flight: _Flight) -> bytes:
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done.is_set():
                flight.scope.cancel()  # nobody wants the answer any more
                if self._flights.get(key) is flight:
                    del self._flights[key]
        if flight.error is not None:
            raise flight.error
        assert flight.result is not None
        return flight.result

    async def _lead(
        self,
        key: tuple[str, bytes],
        method: str,
        candidate: Candidate,
        facts: ChainFacts,
        fetch: Fetch,
        flight: _Flight,
        store: SharedStore | None,
    ) -> None:
        chain = key[0]
        ledger = self._ledger(chain)
        epoch, reorgs = ledger.new_blocks, ledger.reorgs
        keep: Keep | None = None
        shared: tuple[bytes, Keep] | None = None
        try:
            with flight.scope:
                shared = await self._shared_get(store, key, candidate)
                if shared is not None:
                    flight.result, keep = shared
                    flight.from_shared = True
                    self.store.count(chain, method, "shared_hits")
                else:
                    flight.result = await fetch()
                    keep = admit(method, candidate, flight.result)
        except Exception as exc:
            flight.error = exc
        finally:
            if flight.result is None and flight.error is None:
                flight.error = _Abandoned("the shared call was abandoned")
            if self._flights.get(key) is flight:
                del self._flights[key]
            unchanged = ledger.reorgs == reorgs and (
                candidate.tier is not Tier.HEAD or ledger.new_blocks == epoch
            )
            if keep is not None and flight.result is not None and unchanged:
                self.store.put(key, method, flight.result, keep, epoch, trio.current_time())
            flight.done.set()
        if keep is not None and flight.result is not None and unchanged and shared is None:
            await self._shared_set(store, key, keep, facts, flight.result)

    # -- the shared tier ------------------------------------------------------------

    def _shared_key(self, key: tuple[str, bytes]) -> str:
        return SHARED_PREFIX + key[0] + "\n" + key[1].decode("utf-8", "surrogateescape")

    async def _shared_get(
        self, shared: SharedStore | None, key: tuple[str, bytes], candidate: Candidate
    ) -> tuple[bytes, Keep] | None:
        if shared is None or not shared.available or candidate.tier not in _SHAREABLE:
            return None
        raw = None
        with trio.move_on_after(SHARED_READ_S):  # a slow store costs a miss, not the call
            raw = await shared.get_bytes(self._shared_key(key))
        if raw is None:
            return None
        try:
            entry = msgspec.json.decode(raw, type=_SharedEntry)
        except (msgspec.DecodeError, ValueError):
            return None
        tier = Tier.STATIC if entry.static else Tier.IMMUTABLE
        keep = Keep(tier, low=entry.low, high=entry.high, hashes=entry.hashes)
        return bytes(entry.value), keep

    async def _shared_set(
        self,
        shared: SharedStore | None,
        key: tuple[str, bytes],
        keep: Keep,
        facts: ChainFacts,
        value: bytes,
    ) -> None:
        if shared is None or not shared.available or not keep.is_final(facts):
            return
        entry = _SharedEntry(
            keep.low, keep.high, keep.hashes, keep.tier is Tier.STATIC, msgspec.Raw(value)
        )
        await shared.set_bytes(self._shared_key(key), msgspec.json.encode(entry))


_SHAREABLE = frozenset({Tier.STATIC, Tier.IMMUTABLE})
