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
``hashlib.sha3_256`` will not do (and OpenSSL 3.0 here has no KECCAK-256). It is
written out in pure Python, which saves a compiled dependency: about 0.1-0.2 ms per
136-byte block, so a transfer (one or two blocks) hashes in well under a
millisecond, a 128 KB calldata transaction in about a second. The caller
therefore hashes only when a refusal needs the hash, and big inputs off the
event loop (:mod:`lasso.transactions`); :func:`raw_of_params` checks the framing
without hashing.
"""

from __future__ import annotations

import msgspec

__all__ = ["hash_of_params", "keccak256", "raw_of_params", "transaction_hash"]

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


#: Rho and pi together: (source lane, destination lane, rotation).
_MOVES = tuple(
    (x + 5 * y, y + 5 * ((2 * x + 3 * y) % 5), _ROTATIONS[x][y]) for x in range(5) for y in range(5)
)


def _permute(a: list[int]) -> None:
    """Keccak-f[1600] in place on 25 64-bit lanes (index x + 5y), theta and chi unrolled."""
    m = _MASK
    for constant in _ROUND_CONSTANTS:
        c0 = a[0] ^ a[5] ^ a[10] ^ a[15] ^ a[20]
        c1 = a[1] ^ a[6] ^ a[11] ^ a[16] ^ a[21]
        c2 = a[2] ^ a[7] ^ a[12] ^ a[17] ^ a[22]
        c3 = a[3] ^ a[8] ^ a[13] ^ a[18] ^ a[23]
        c4 = a[4] ^ a[9] ^ a[14] ^ a[19] ^ a[24]
        d = (
            c4 ^ (((c1 << 1) | (c1 >> 63)) & m),
            c0 ^ (((c2 << 1) | (c2 >> 63)) & m),
            c1 ^ (((c3 << 1) | (c3 >> 63)) & m),
            c2 ^ (((c4 << 1) | (c4 >> 63)) & m),
            c3 ^ (((c0 << 1) | (c0 >> 63)) & m),
        )
        b = [0] * 25
        for src, dst, rot in _MOVES:
            v = a[src] ^ d[src % 5]
            b[dst] = ((v << rot) | (v >> (64 - rot))) & m if rot else v
        for y in (0, 5, 10, 15, 20):
            b0, b1, b2, b3, b4 = b[y], b[y + 1], b[y + 2], b[y + 3], b[y + 4]
            a[y] = b0 ^ (~b1 & b2)
            a[y + 1] = b1 ^ (~b2 & b3)
            a[y + 2] = b2 ^ (~b3 & b4)
            a[y + 3] = b3 ^ (~b4 & b0)
            a[y + 4] = b4 ^ (~b0 & b1)
        a[0] ^= constant


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
    hashed = _hashed_part(raw)
    return None if hashed is None else keccak256(hashed)


def _hashed_part(raw: bytes) -> bytes | None:
    """What the hash covers (see the module docstring); None for what is no transaction."""
    if not raw:
        return None
    kind = raw[0]
    try:
        if kind >= 0xC0:  # legacy: an RLP list
            _, _, end = _item(raw, 0)
            return raw if end == len(raw) else None
        if kind >= 0x80:  # an RLP string is no transaction
            return None
        is_list, start, end = _item(raw, 1)
        if not is_list or end != len(raw):
            return None
        if kind == 0x03 and start < end:
            body_is_list, _, body_end = _item(raw, start)
            if body_is_list:  # network form: hash the payload body alone
                return b"\x03" + raw[start:body_end]
    except _Malformed:
        return None
    return raw


_params = msgspec.json.Decoder(tuple[str]).decode


def raw_of_params(params: bytes) -> bytes | None:
    """The signed bytes of ``eth_sendRawTransaction`` params, if they are one transaction.

    None for anything a node must judge itself: not exactly ``["0x<hex>"]``, odd
    length, non-hex digits, or bytes that are not framed as a transaction. Cheap:
    no hashing (see :func:`transaction_hash`).
    """
    try:
        (text,) = _params(params)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    if not text.startswith(("0x", "0X")) or len(text) % 2:
        return None
    if any(c.isspace() for c in text):  # bytes.fromhex skips whitespace; a node does not
        return None
    try:
        raw = bytes.fromhex(text[2:])
    except ValueError:
        return None
    return raw if _hashed_part(raw) is not None else None


def hash_of_params(params: bytes) -> str | None:
    """The ``0x…`` lowercase hash for ``eth_sendRawTransaction`` params, or None."""
    raw = raw_of_params(params)
    digest = None if raw is None else transaction_hash(raw)
    return None if digest is None else "0x" + digest.hex()
