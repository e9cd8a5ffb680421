"""What a subscription stream's consumer reads from its inbox, and whom it serves."""

from __future__ import annotations

import msgspec


class Live(msgspec.Struct, frozen=True):
    provider_id: str
    upstream_id: str
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


class Serving(msgspec.Struct, frozen=True):
    provider_id: str
    upstream_id: str
    connection_id: str | None
