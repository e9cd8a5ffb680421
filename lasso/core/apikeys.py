"""Client API keys: which configured key, if any, a presented key is.

Keys are held only as SHA-256 digests: a key configured in the clear is hashed
when the ring is built, and the hashed form (``sha256 = "<hex>"``) is used as
written. A presented key is hashed once and compared with **every** configured
digest through :func:`hmac.compare_digest`, without stopping at a match, so the
time taken depends neither on which key matched nor on how long a prefix of a
wrong key was right. (Comparing digests rather than the keys also makes the
length of the presented key irrelevant.)

Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import msgspec

__all__ = ["KeyEntry", "KeyRing", "digest"]


def digest(key: str) -> bytes:
    """SHA-256 of the key's UTF-8 bytes (``printf %s KEY | sha256sum`` in hex)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class KeyEntry(msgspec.Struct, frozen=True):
    """One configured key: its name (the client identity), digest and own limits."""

    name: str
    sha256: bytes
    rps: float | None = None
    burst: int | None = None


class KeyRing:
    """The configured keys, matched in constant time."""

    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self.entries = tuple(entries)
        self.names = frozenset(entry.name for entry in self.entries)

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def match(self, presented: str) -> KeyEntry | None:
        """The entry whose key ``presented`` is, or None."""
        candidate = digest(presented)
        found: KeyEntry | None = None
        for entry in self.entries:  # every entry, always: no early exit
            if hmac.compare_digest(candidate, entry.sha256):
                found = entry
        return found
