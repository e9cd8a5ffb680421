"""What a node's refusal of ``eth_sendRawTransaction`` says about the transaction (pure).

Resending a signed transaction is safe (:mod:`lasso.transactions`), so a refusal
may only mean that the node already has it:

    already known      "already known" (geth), "known transaction" (older geth),
                       "already imported", "ALREADY_EXISTS" (Erigon), "transaction
                       already in pool", "AlreadyKnown" (Nethermind) ...: the node
                       holds this very transaction (the bytes sent were the same),
                       so the answer is its hash.
    nonce too low      the sender's nonce moved past it: this transaction was
                       mined, or another one with the same nonce was. Only a
                       lookup by hash can tell (the caller asks the providers).
    anything else      the node's own error, for the client.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

from lasso.errors import UpstreamError, UpstreamRpcError

__all__ = ["Refusal", "refusal_of", "strongest"]


class Refusal(enum.Enum):
    ALREADY_KNOWN = "already_known"
    NONCE_TOO_LOW = "nonce_too_low"
    OTHER = "other"


_ALREADY_KNOWN = re.compile(
    r"already known|alreadyknown|known transaction|already imported|already_exists"
    r"|already exists|already in (the )?(tx|transaction )?(pool|mempool)|already in pool"
)
_NONCE_TOO_LOW = re.compile(r"nonce too low|oldnonce|nonce has already been used")


def refusal_of(exc: UpstreamError) -> Refusal:
    """What one failed attempt's error says (only a node's JSON-RPC error says anything)."""
    if not isinstance(exc, UpstreamRpcError):
        return Refusal.OTHER
    text = exc.message.lower()
    if _ALREADY_KNOWN.search(text):
        return Refusal.ALREADY_KNOWN
    if _NONCE_TOO_LOW.search(text):
        return Refusal.NONCE_TOO_LOW
    return Refusal.OTHER


def strongest(errors: Iterable[UpstreamError]) -> tuple[Refusal, UpstreamError | None]:
    """Across attempts: "already known" from any wins, then the first "nonce too low"."""
    nonce_too_low: UpstreamError | None = None
    for exc in errors:
        refusal = refusal_of(exc)
        if refusal is Refusal.ALREADY_KNOWN:
            return refusal, exc
        if refusal is Refusal.NONCE_TOO_LOW and nonce_too_low is None:
            nonce_too_low = exc
    if nonce_too_low is not None:
        return Refusal.NONCE_TOO_LOW, nonce_too_low
    return Refusal.OTHER, None
