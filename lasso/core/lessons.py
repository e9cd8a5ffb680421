"""What a provider's capability error teaches about it, for the next requests.

Pure. The dispatcher hands every CAPABILITY answer (never a breaker failure) to
:func:`lesson`, which says what to write into the provider's
:class:`~lasso.core.capabilities.CapabilityBook`, if anything:

    UNSUPPORTED  "method not found" / "not supported" for this method, answered over
                 HTTP: skip the provider for the method until the TTL passes. Not
                 over WebSocket: anvil answers every call it cannot match there, bad
                 params included, with one vague -32602 (see ``lasso.dispatch``).
                 Not when the words are about this request rather than the method
                 ("specify an address", a block tag or range it will not serve), nor
                 a "does not exist" about something else (an account, a filter).
    PRUNED       a pruned-state answer ("missing trie node", "header not found",
                 "historical state ... is not available", anvil's ``BlockOutOfRange``
                 "block height is H but requested was R" with R < H, ...) for state
                 ``depth = consensus head - block`` below the head: no archival
                 request that deep or deeper for the TTL. Only when the provider has
                 the block (its height is at or past it, or, height unknown, the
                 block is archival): a node that is merely behind says the same
                 words for a block it has not reached, and that is not pruning.
"""

from __future__ import annotations

import enum
import re

import msgspec

from lasso.core.block_target import BlockRef, BlockTarget, TargetKind
from lasso.core.error_rules import Reason

__all__ = ["Lesson", "LessonKind", "lesson", "lowest_block"]


class LessonKind(enum.Enum):
    UNSUPPORTED = "unsupported"
    PRUNED = "pruned"


class Lesson(msgspec.Struct, frozen=True):
    kind: LessonKind
    depth: int = 0  # PRUNED: blocks below the consensus head


_METHOD_MISSING = frozenset({Reason.METHOD_NOT_FOUND, Reason.UNSUPPORTED})
_NO_STATE = frozenset({Reason.HISTORY_UNAVAILABLE, Reason.BLOCK_NOT_AVAILABLE})
#: EIP-1474 / JSON-RPC "method not found" and "method not supported".
_METHOD_CODES = frozenset({-32601, -32004})
#: An "unsupported" that is about this request's arguments, not the method.
_REQUEST_SCOPED = re.compile(r"specify an address|dedicated full node|range|block|tag|param")
#: anvil: "BlockOutOfRangeError: block height is 10 but requested was 1".
_OUT_OF_RANGE = re.compile(r"block height is (\d+) but requested was (\d+)")


def lesson(
    *,
    method: str,
    reason: str,
    code: int,
    message: str,
    transport: str,
    target: BlockTarget,
    head: int | None,
    provider_height: int | None,
    archival_threshold: int,
) -> Lesson | None:
    """What to learn from one capability error; see the module docstring."""
    text = message.lower()
    if reason in _METHOD_MISSING:
        if transport != "http":
            return None
        if reason == Reason.METHOD_NOT_FOUND:
            named = code in _METHOD_CODES or "method" in text or method.lower() in text
            return Lesson(LessonKind.UNSUPPORTED) if named else None
        if _REQUEST_SCOPED.search(text):
            return None
        return Lesson(LessonKind.UNSUPPORTED)
    if reason not in _NO_STATE or head is None:
        return None
    block = lowest_block(target)
    if block is None:
        return None
    stated = _OUT_OF_RANGE.search(text)
    if stated is not None:
        has_block = int(stated.group(2)) < int(stated.group(1))
    elif provider_height is not None:
        has_block = provider_height >= block
    else:
        has_block = head - block > archival_threshold
    if not has_block or block > head:
        return None
    return Lesson(LessonKind.PRUNED, depth=head - block)


def lowest_block(target: BlockTarget) -> int | None:
    """The lowest block a request names by number (``earliest`` is 0); None for tags,
    hashes and malformed params."""
    if target.kind in (TargetKind.NONE, TargetKind.HASH, TargetKind.UNKNOWN):
        return None
    numbers = [_number(r) for r in target.refs() if isinstance(r, int) or r == "earliest"]
    return min(numbers) if numbers else None


def _number(ref: BlockRef) -> int:
    return ref if isinstance(ref, int) else 0  # earliest
