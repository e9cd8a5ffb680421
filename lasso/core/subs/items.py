"""Values shared by the subscription streams: what to deliver, "too far to fill", and the
backfill window a new provider must supply.

A stream never sends anything itself. It answers with :class:`Delivery` items, in the
order the clients must see them; the shell wraps each payload in an ``eth_subscription``
notification per client. When a payload is delivered exactly as the upstream sent it,
``raw`` carries the upstream's own bytes (whatever the shell passed in), so the shell
can splice them in without re-encoding; ``raw`` is ``None`` for payloads Lasso built or
changed (a backfilled head, a log re-sent with ``removed: true``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "DEFAULT_MAX_BACKFILL",
    "DEFAULT_WINDOW",
    "Delivery",
    "TooFar",
    "backfill_window",
    "hex_quantity",
    "is_hex",
    "parse_quantity",
]

DEFAULT_MAX_BACKFILL: Final = 128  # blocks a failover or a live gap may fill
DEFAULT_WINDOW: Final = 256  # recent delivered blocks remembered for dedupe and reorgs


class Delivery(msgspec.Struct, frozen=True):
    """One notification payload to fan out, in order."""

    payload: dict[str, Any]
    raw: bytes | None = None


class TooFar(msgspec.Struct, frozen=True):
    """The stream cannot be repaired without a gap; ``message`` is for the clients.

    ``reorg=False``: blocks ``first..last`` (inclusive) are missing, more than ``limit``
    (the backfill limit) to fill. ``reorg=True``: a reorg replaced delivered blocks from
    ``first`` or below, deeper than the ``limit``-block window, up to ``last``.
    """

    first: int
    last: int
    limit: int
    reorg: bool = False

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1

    @property
    def message(self) -> str:
        span = f"{hex_quantity(self.first)}..{hex_quantity(self.last)}"
        if self.reorg:
            return (
                f"a reorg replaced delivered blocks at or below {hex_quantity(self.first)}, "
                f"deeper than the {self.limit}-block window; the stream cannot be repaired"
            )
        return (
            f"the subscription missed blocks {span} ({self.blocks} blocks), more than "
            f"the {self.limit}-block backfill limit; the stream cannot continue without a gap"
        )


def backfill_window(
    last: int | None, provider_head: int, limit: int, *, reread_from: int | None = None
) -> range | TooFar:
    """The blocks a newly chosen provider (head ``provider_head``) must supply.

    ``last``: the stream's last complete block (``None``: nothing delivered yet, nothing
    to fill). Blocks ``last+1..provider_head``, or :class:`TooFar` when that is more
    than ``limit``. ``reread_from``: an earlier block to re-read from as well (the logs
    stream's blocks known complete only by number), never more than ``limit`` blocks
    below ``provider_head``.
    """
    if last is None:
        return range(0)
    start = last + 1
    if provider_head - last > limit:
        return TooFar(start, provider_head, limit)
    if reread_from is not None:
        start = min(start, max(reread_from, provider_head + 1 - limit))
    return range(start, max(start, provider_head + 1))


def parse_quantity(value: object) -> int | None:
    """A JSON-RPC quantity (``"0x1b4"``) as an int, or ``None`` if it is not one."""
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        return None
    digits = value[2:]
    if not digits or not is_hex(digits):
        return None
    return int(digits, 16)


def is_hex(digits: str) -> bool:
    """Only hex digits (``int(..., 16)`` alone would also take ``_``, ``+`` and spaces)."""
    return all(c in _HEX_DIGITS for c in digits)


_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def hex_quantity(number: int) -> str:
    return hex(number)
