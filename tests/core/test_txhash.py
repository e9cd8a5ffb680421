"""The local transaction hash: Keccak-256 vectors and the hash of each transaction form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.txhash import hash_of_params, keccak256, transaction_hash


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        (b"abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"),
        (
            b"The quick brown fox jumps over the lazy dog",
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15",
        ),
    ],
)
def test_keccak256_known_values(data: bytes, digest: str) -> None:
    assert keccak256(data).hex() == digest


def rlp_bytes(payload: bytes) -> bytes:
    if len(payload) == 1 and payload[0] < 0x80:
        return payload
    return _prefix(0x80, len(payload)) + payload


def rlp_list(*items: bytes) -> bytes:
    payload = b"".join(items)
    return _prefix(0xC0, len(payload)) + payload


def _prefix(base: int, length: int) -> bytes:
    if length < 56:
        return bytes([base + length])
    size = length.to_bytes((length.bit_length() + 7) // 8)
    return bytes([base + 55 + len(size)]) + size


BODY = rlp_list(rlp_bytes(b"\x01"), rlp_bytes(b"\x07"), rlp_bytes(b"\xaa" * 20))
LONG_BODY = rlp_list(rlp_bytes(b"\x01"), rlp_bytes(b"\xbb" * 300))


@pytest.mark.parametrize(
    "raw",
    [BODY, b"\x01" + BODY, b"\x02" + BODY, b"\x02" + LONG_BODY, b"\x03" + BODY, b"\x04" + BODY],
    ids=["legacy", "2930", "1559", "1559-long-list", "4844-canonical", "7702"],
)
def test_legacy_and_typed_transactions_hash_their_bytes(raw: bytes) -> None:
    assert transaction_hash(raw) == keccak256(raw)


def test_a_blob_transaction_in_network_form_hashes_its_payload_body() -> None:
    blobs = rlp_list(rlp_bytes(b"\x00" * 4096))  # a long-form string inside
    commitments = rlp_list(rlp_bytes(b"\xc0" * 48))
    proofs = rlp_list(rlp_bytes(b"\xd0" * 48))
    network = b"\x03" + rlp_list(LONG_BODY, blobs, commitments, proofs)
    assert transaction_hash(network) == keccak256(b"\x03" + LONG_BODY)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80",  # an RLP string
        b"\xb8\x01\x00",  # a long RLP string
        b"\x02",  # a type byte and nothing
        b"\x02\x05",  # a type byte and a string
        BODY[:-1],  # truncated legacy list
        BODY + b"\x00",  # trailing bytes
        b"\x02" + BODY[:-1],
        b"\x02\xf9\x01",  # long list length truncated
        b"\x03" + rlp_list(BODY[:2]),  # network form with a truncated body
    ],
)
def test_not_a_transaction_has_no_hash(raw: bytes) -> None:
    assert transaction_hash(raw) is None


@given(st.binary(max_size=300))
def test_any_bytes_have_a_hash_or_none(raw: bytes) -> None:
    digest = transaction_hash(raw)
    assert digest is None or len(digest) == 32


RAW = "0x02" + BODY.hex()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (f'["{RAW}"]', "0x" + keccak256(bytes.fromhex(RAW[2:])).hex()),
        (f'["0X{RAW[2:].upper()}"]', "0x" + keccak256(bytes.fromhex(RAW[2:])).hex()),
        (f'["{RAW[2:]}"]', None),
        (f'["{RAW}0"]', None),
        (f'["{RAW[:4]} {RAW[4:]}"]', None),
        ('["0xzz"]', None),
        (f'["{RAW}","{RAW}"]', None),
        (f'"{RAW}"', None),
        ("[]", None),
        ("", None),
        ("[1]", None),
        ("not json", None),
    ],
)
def test_hash_of_params(params: str, expected: str | None) -> None:
    assert hash_of_params(params.encode()) == expected
