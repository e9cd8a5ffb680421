"""Head tracking decisions: how often to poll a provider's head, and what a head is.

Pure: the shell (:mod:`lasso.upstream.heads`) passes the chain's live config and its
measured block time, and gets back seconds.

**Poll interval.** ``head_poll_ms`` set: that many milliseconds; ``0`` turns head
tracking off for the chain (``None`` is returned). Unset: half the block time (the
measured EMA, or the configured ``block_time_ms`` until measured), clamped to
250 ms .. 15 s, so a head is seen at most about half a block late and a slow chain is
still polled often enough to stay *live* in the chain state's 30 s window.

**Quiet check.** A provider tracked by its ``newHeads`` subscription still gets one
HTTP head poll when no head has arrived for two block times (clamped to 1 s .. 20 s):
a paused node stays live with its real height (so its lag keeps growing), and an
upstream subscription that silently stopped pushing is noticed.

**A head** is the ``number``, ``hash`` and ``parentHash`` of a block object, as a
``newHeads`` notification or ``eth_getBlockByNumber("latest", false)`` gives it.
Anything else (``null``, missing or malformed fields) is not a head.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Head", "head_from_block", "parse_head", "poll_interval_s", "quiet_check_s"]

MIN_POLL_MS = 250.0
MAX_POLL_MS = 15_000.0
MIN_QUIET_MS = 1_000.0
MAX_QUIET_MS = 20_000.0


def poll_interval_s(head_poll_ms: int | None, block_time_ms: float) -> float | None:
    """Seconds between head polls; ``None``: head tracking is off (``head_poll_ms = 0``)."""
    if head_poll_ms is not None:
        return None if head_poll_ms == 0 else head_poll_ms / 1000.0
    return min(max(block_time_ms / 2.0, MIN_POLL_MS), MAX_POLL_MS) / 1000.0


def quiet_check_s(block_time_ms: float) -> float:
    """How long a subscribed provider may send no head before one HTTP head poll."""
    return min(max(block_time_ms * 2.0, MIN_QUIET_MS), MAX_QUIET_MS) / 1000.0


class Head(msgspec.Struct, frozen=True):
    number: int
    hash: str
    parent_hash: str | None


class _Block(msgspec.Struct, rename={"parent_hash": "parentHash"}):
    number: str
    hash: str
    parent_hash: str | None = None


_decode_block = msgspec.json.Decoder(_Block | None).decode


def parse_head(raw: bytes) -> Head | None:
    """The head in a block object's JSON bytes, or ``None`` (``null``, not a block)."""
    try:
        block = _decode_block(raw)
    except msgspec.DecodeError:
        return None
    return None if block is None else _head(block.number, block.hash, block.parent_hash)


def head_from_block(block: Any) -> Head | None:
    """The head of an already decoded block object, or ``None``."""
    if not isinstance(block, dict):
        return None
    number, block_hash, parent = block.get("number"), block.get("hash"), block.get("parentHash")
    if not isinstance(number, str) or not isinstance(block_hash, str):
        return None
    return _head(number, block_hash, parent if isinstance(parent, str) else None)


def _head(number: str, block_hash: str, parent_hash: str | None) -> Head | None:
    if not number.startswith(("0x", "0X")) or not block_hash:
        return None
    try:
        value = int(number, 16)
    except ValueError:
        return None
    return None if value < 0 else Head(value, block_hash, parent_hash)
