"""What the response cache may keep, and for how long. Pure: the chain's facts are passed in.

Theory of operation
-------------------
A call is judged twice. :func:`classify` runs before the upstream call, on the method,
the raw params and the chain's facts (:class:`ChainFacts`: the consensus head and the
reorg-safe depth), and returns a :class:`Candidate` (may be kept, in which tier) or
``None`` (never kept). :func:`admit` runs on the answer and returns the :class:`Keep`
record (tier, expiry, the blocks it is about) or ``None``.

Tiers:

* ``STATIC``     ``net_version`` (and ``eth_chainId`` on a pinned route): for good.
* ``IMMUTABLE``  kept until the size bound or a reorg of its blocks evicts it:
  a block by hash; a block-number query at or below the *final* block
  (``head - finality_depth``, ``earliest`` is block 0); ``eth_getLogs`` over a fully
  numeric range ending at or below it; ``eth_call`` / ``eth_getBalance`` / ... at such a
  number or at a block hash; a transaction or receipt by hash once it is in a block.
* ``HEAD``       ``latest`` / ``safe`` / ``finalized`` reads, ``eth_blockNumber``,
  ``eth_gasPrice``, ``eth_maxPriorityFeePerGas``, ``eth_blobBaseFee``: until the next
  new block is seen.
* ``TTL``        a method the operator gave a TTL in ``[cache] methods``.

Never kept: errors (the caller never offers them), ``null`` (a transaction not yet
mined, a block not yet there), an answer about a transaction not yet in a block,
anything at ``pending``, a number above the final block, writes, filters and
subscriptions (even with an override), and every method this module does not know.

The :class:`Keep` names the block numbers (``low..high``) and hashes it is about, so a
reorg that replaces blocks from ``fork`` up evicts exactly the entries that mention them.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

import msgspec

from lasso.core.block_target import RULES, BlockTarget, TargetKind, block_target

__all__ = [
    "Candidate",
    "ChainFacts",
    "Keep",
    "Override",
    "Tier",
    "admit",
    "classify",
    "may_cache",
]


class Tier(Enum):
    STATIC = "static"
    IMMUTABLE = "immutable"
    HEAD = "head"
    TTL = "ttl"


#: A ``[cache] methods`` value: ``"never"``, ``"default"`` or a TTL (``"2000ms"``).
Override = str


def ttl_ms(override: Override | None) -> int | None:
    """The TTL an override names (``"2000ms"`` -> 2000), else None."""
    if override is None or not override.endswith("ms"):
        return None
    try:
        return int(override[:-2])
    except ValueError:
        return None


#: Never kept, whatever the overrides say: writes, node-side state, subscriptions.
NEVER: Final = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_sendTransaction",
        "eth_sendRawTransactionSync",
        "eth_sign",
        "eth_signTransaction",
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_uninstallFilter",
        "eth_subscribe",
        "eth_unsubscribe",
    }
)
STATIC: Final = frozenset({"net_version", "eth_chainId"})
HEAD: Final = frozenset(
    {"eth_blockNumber", "eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_blobBaseFee"}
)
#: By transaction hash: kept once the transaction is in a block (the answer names it).
BY_TX_HASH: Final = frozenset({"eth_getTransactionByHash", "eth_getTransactionReceipt"})
#: Methods whose answer is a block or header: its own ``number`` and ``hash``.
_BLOCK_RESULTS: Final = frozenset(
    {
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getHeaderByHash",
        "eth_getHeaderByNumber",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getUncleByBlockNumberAndIndex",
    }
)
#: Methods with a block parameter (``lasso.core.block_target``) whose answer is fixed by it.
BY_BLOCK: Final = frozenset(RULES) - NEVER
_KNOWN: Final = STATIC | HEAD | BY_TX_HASH | BY_BLOCK


class ChainFacts(msgspec.Struct, frozen=True):
    """What the policy needs to know about the chain now."""

    head: int | None  # the consensus head; None while no provider reports one
    finality_depth: int  # blocks below the head taken as final (reorg-safe)

    @property
    def final(self) -> int | None:
        """The highest block taken as final, or None while the head is unknown."""
        if self.head is None:
            return None
        return self.head - self.finality_depth


class Candidate(msgspec.Struct, frozen=True):
    """A call that may be kept (decided before the call)."""

    tier: Tier
    low: int | None = None  # the block numbers the request names
    high: int | None = None
    block_hash: str | None = None  # the block hash the request names
    ttl_ms: int | None = None  # the TTL tier; a HEAD entry's bound in time


class Keep(msgspec.Struct, frozen=True):
    """An answer to keep: its tier and the blocks it is about (for reorg eviction)."""

    tier: Tier
    low: int | None = None
    high: int | None = None
    hashes: tuple[str, ...] = ()
    ttl_ms: int | None = None

    def is_final(self, facts: ChainFacts) -> bool:
        """Whether every block it names is final now (safe to share across instances)."""
        if self.tier is Tier.STATIC:
            return True
        final = facts.final
        return self.tier is Tier.IMMUTABLE and (
            final is not None and self.high is not None and self.high <= final
        )


def may_cache(method: str, override: Override | None, *, latest: bool = True) -> bool:
    """Cheap pre-check before any params parsing: could ``method`` ever be kept?"""
    if method in NEVER or override == "never":
        return False
    if method in HEAD and not latest:
        return ttl_ms(override) is not None
    return method in _KNOWN or ttl_ms(override) is not None


def classify(
    method: str,
    params: bytes,
    facts: ChainFacts,
    override: Override | None = None,
    *,
    latest: bool = True,
) -> Candidate | None:
    """Whether this call may be kept, in which tier; None: never.

    ``latest=False`` ([cache] latest) keeps no ``HEAD``-tier answer."""
    if not may_cache(method, override, latest=latest):
        return None
    target = block_target(method, params)
    if target.kind is TargetKind.TAG and target.tag == "pending":
        return None
    if target.kind is TargetKind.RANGE and "pending" in target.refs():
        return None
    ttl = ttl_ms(override)
    if ttl is not None:
        return Candidate(Tier.TTL, ttl_ms=ttl)
    if method in STATIC:
        return Candidate(Tier.STATIC)
    if method in HEAD:
        return Candidate(Tier.HEAD)
    if method in BY_TX_HASH:
        return Candidate(Tier.IMMUTABLE)
    found = _by_block(method, target, facts)
    if found is not None and found.tier is Tier.HEAD and not latest:
        return None
    return found


def _by_block(method: str, target: BlockTarget, facts: ChainFacts) -> Candidate | None:
    kind = target.kind
    if kind is TargetKind.HASH:
        return Candidate(Tier.IMMUTABLE, block_hash=target.block_hash)
    if kind is TargetKind.TAG:
        if target.tag == "earliest":
            return Candidate(Tier.IMMUTABLE, low=0, high=0)
        return None if method == "eth_getLogs" else Candidate(Tier.HEAD)
    if kind is TargetKind.NUMBER and target.number is not None:
        return _final(target.number, target.number, facts)
    if kind is TargetKind.RANGE:
        low = 0 if target.low == "earliest" else target.low
        high = 0 if target.high == "earliest" else target.high
        if isinstance(low, int) and isinstance(high, int) and low <= high:
            return _final(low, high, facts)
    return None  # a range with a head tag, an inverted range, malformed params


def _final(low: int, high: int, facts: ChainFacts) -> Candidate | None:
    final = facts.final
    if final is None or high > final:
        return None
    return Candidate(Tier.IMMUTABLE, low=low, high=high)


class _Located(msgspec.Struct):
    """The block an answer names (every other field is skipped, not decoded)."""

    number: str | None = None
    hash: str | None = None
    blockNumber: str | None = None
    blockHash: str | None = None


_LOCATED = msgspec.json.Decoder(_Located)


def admit(method: str, candidate: Candidate, result: bytes) -> Keep | None:
    """Whether to keep ``result`` (a successful answer's raw bytes); None: do not."""
    body = result.strip()
    if body == b"null" or not body:
        return None  # data that may still appear
    hashes = () if candidate.block_hash is None else (candidate.block_hash,)
    low, high = candidate.low, candidate.high
    if candidate.tier is Tier.IMMUTABLE and body[:1] == b"{":
        located = _locate(method, body)
        if located is None:
            if method in BY_TX_HASH:
                return None  # cannot tell which block it is in
        else:
            number, block_hash = located
            if method in BY_TX_HASH and (number is None or block_hash is None):
                return None  # not yet in a block: pending
            if number is not None and low is None:
                low = high = number
            if block_hash is not None and block_hash not in hashes:
                hashes = (*hashes, block_hash)
    elif method in BY_TX_HASH:
        return None
    return Keep(candidate.tier, low=low, high=high, hashes=hashes, ttl_ms=candidate.ttl_ms)


def _locate(method: str, body: bytes) -> tuple[int | None, str | None] | None:
    try:
        found = _LOCATED.decode(body)
    except (msgspec.DecodeError, ValueError):
        return None
    if method in _BLOCK_RESULTS:
        number, block_hash = found.number, found.hash
    else:
        number, block_hash = found.blockNumber, found.blockHash
    try:
        parsed = None if number is None else int(number, 16)
    except ValueError:
        return None
    return parsed, None if block_hash is None else block_hash.lower()
