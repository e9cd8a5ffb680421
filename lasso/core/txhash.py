"""The hash of a signed raw transaction, computed locally (pure: no I/O, no clock).

A node answers ``eth_sendRawTransaction`` with the transaction hash, and that hash
is a function of the signed bytes alone:

    legacy (first byte >= 0xc0)      keccak256(raw)
    typed, EIP-2718 (0x00..0x7f)     keccak256(raw)
    blob, type 3, network form       keccak256(0x03 || rlp(tx_payload_body)), where
                                     raw = 0x03 || rlp([tx_payload_body, blobs,
                                     commitments, proofs]) (EIP-4844)

Knowing it lets the gateway resend a transaction after an ambiguous failure and
recognise "already known" for the same hash as success (:mod:`lasso.transactions`).
Anything that is not plainly a transaction (bad hex, an RLP string, truncated
lengths) has no hash here: the caller forwards it and the node answers with its
own error.

Keccak-256 is the original Keccak padding (0x01), not NIST SHA3-256 (0x06), so
``hashlib.sha3_256`` will not do. It is written out here in pure Python: the
inputs are transaction-sized (a blob transaction's body is hashed without its
blobs), one hash costs about half a millisecond per 136-byte block (a transfer
is one block), and it saves a compiled dependency.
"""

from __future__ import annotations

import msgspec

__all__ = ["hash_of_params", "keccak256", "transaction_hash"]

_RATE = 136  # bytes: the 1088-bit rate of Keccak-256 (capacity 512)
_MASK = (1 << 64) - 1
_ROUND_CONSTANTS = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)  # fmt: skip
# Rotation offsets r[x][y], lane index x + 5y.
_ROTATIONS = (
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK if shift else value


def _permute(lanes: list[int]) -> None:
    """Keccak-f[1600] in place on 25 64-bit lanes (index x + 5y)."""
    for constant in _ROUND_CONSTANTS:
        # theta
        columns = [
            lanes[x] ^ lanes[x + 5] ^ lanes[x + 10] ^ lanes[x + 15] ^ lanes[x + 20]
            for x in range(5)
        ]
        for x in range(5):
            d = columns[(x - 1) % 5] ^ _rotl(columns[(x + 1) % 5], 1)
            for y in range(0, 25, 5):
                lanes[x + y] ^= d
        # rho and pi
        moved = [0] * 25
        for x in range(5):
            for y in range(5):
                moved[y + 5 * ((2 * x + 3 * y) % 5)] = _rotl(lanes[x + 5 * y], _ROTATIONS[x][y])
        # chi
        for y in range(0, 25, 5):
            row = moved[y : y + 5]
            for x in range(5):
                lanes[x + y] = row[x] ^ (~row[(x + 1) % 5] & row[(x + 2) % 5] & _MASK)
        # iota
        lanes[0] ^= constant


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as Ethereum uses it (original padding)."""
    padded = bytearray(data)
    padded.append(0x01)
    padded.extend(b"\0" * (-len(padded) % _RATE))
    padded[-1] |= 0x80
    lanes = [0] * 25
    for start in range(0, len(padded), _RATE):
        block = padded[start : start + _RATE]
        for i in range(_RATE // 8):
            lanes[i] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _permute(lanes)
    return b"".join(lane.to_bytes(8, "little") for lane in lanes[:4])


class _Malformed(ValueError):
    pass


def _item(data: bytes, at: int) -> tuple[bool, int, int]:
    """The RLP item starting at ``at``: (is_list, payload start, end); raises _Malformed."""
    if at >= len(data):
        raise _Malformed("truncated")
    first = data[at]
    if first < 0x80:
        return False, at, at + 1
    is_list = first >= 0xC0
    short = first - (0xC0 if is_list else 0x80)
    if short < 56:
        start, length = at + 1, short
    else:
        start = at + 1 + short - 55
        if start > len(data):
            raise _Malformed("truncated length")
        length = int.from_bytes(data[at + 1 : start])
    end = start + length
    if end > len(data):
        raise _Malformed("truncated")
    return is_list, start, end


def transaction_hash(raw: bytes) -> bytes | None:
    """The hash of a signed transaction in its wire form, or None if it is not one."""
    if not raw:
        return None
    kind = raw[0]
    try:
        if kind >= 0xC0:  # legacy: an RLP list
            _, _, end = _item(raw, 0)
            return keccak256(raw) if end == len(raw) else None
        if kind >= 0x80:  # an RLP string is no transaction
            return None
        is_list, start, end = _item(raw, 1)
        if not is_list or end != len(raw):
            return None
        if kind == 0x03 and start < end:
            body_is_list, _, body_end = _item(raw, start)
            if body_is_list:  # network form: hash the payload body alone
                return keccak256(b"\x03" + raw[start:body_end])
    except _Malformed:
        return None
    return keccak256(raw)


_params = msgspec.json.Decoder(tuple[str]).decode


def hash_of_params(params: bytes) -> str | None:
    """The ``0x…`` lowercase hash for ``eth_sendRawTransaction`` params, or None.

    None for anything a node must judge itself: not exactly ``["0x<hex>"]``, odd
    length, non-hex digits, or bytes that are not a transaction.
    """
    try:
        (text,) = _params(params)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    if not text.startswith(("0x", "0X")):
        return None
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        return None
    if len(text) % 2:  # bytes.fromhex ignores whitespace; a node does not
        return None
    if any(c.isspace() for c in text):
        return None
    digest = transaction_hash(raw)
    return None if digest is None else "0x" + digest.hex()
