"""What a subscription stream's consumer reads from its inbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from lasso.subscriptions.serving import Serving


class Live(msgspec.Struct, frozen=True):
    """An upstream notification, routed by the :class:`Serving` record it names."""

    serving: Serving
    payload: bytes


class Lost(msgspec.Struct, frozen=True):
    provider_id: str
    reason: str


class Resync(msgspec.Struct, frozen=True):
    reason: str


class Orphaned(msgspec.Struct, frozen=True):
    """The chain's heads stream saw a reorg: these delivered block hashes are gone."""

    hashes: tuple[str, ...]
    fork_point: int | None


Event = Live | Lost | Resync | Orphaned
