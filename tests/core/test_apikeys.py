"""API keys: digests only, matched in constant time through hmac.compare_digest."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from lasso.core import apikeys
from lasso.core.apikeys import KeyEntry, KeyRing, digest

RING = KeyRing(
    [
        KeyEntry("team-a", digest("alpha-key-0123456789")),
        KeyEntry("team-b", bytes.fromhex(hashlib.sha256(b"bravo-key").hexdigest()), rps=5.0),
    ]
)


def test_a_configured_key_matches_its_entry_and_others_do_not() -> None:
    assert RING.enabled and RING.names == {"team-a", "team-b"}
    match = RING.match("alpha-key-0123456789")
    assert match is not None and match.name == "team-a"
    hashed = RING.match("bravo-key")
    assert hashed is not None and hashed.name == "team-b" and hashed.rps == 5.0
    for wrong in ("", "alpha-key-012345678", "alpha-key-0123456789 ", "ALPHA-KEY-0123456789"):
        assert RING.match(wrong) is None
    assert not KeyRing([]).enabled


def test_every_entry_is_compared_through_compare_digest_with_no_early_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(apikeys.hmac, "compare_digest", spy)
    assert RING.match("alpha-key-0123456789") is not None  # the first entry matches...
    assert len(compared) == 2  # ...and the second is still compared
    # Digests of equal length are compared, never the keys themselves.
    assert all(len(a) == len(b) == 32 for a, b in compared)
    assert compared[0][0] == digest("alpha-key-0123456789")
    compared.clear()
    assert RING.match("nope") is None
    assert len(compared) == 2
