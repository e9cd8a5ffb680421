"""How deep arrays and objects nest in a JSON text, measured without decoding it.

Guards the decoder and the nodes behind it: msgspec recurses once per level
even while skipping a value it keeps raw, and raises ``RecursionError`` near
Python's recursion limit (about 990 levels); many nodes refuse far less
(anvil's serde_json stops at 128 and answers -32600 with a null id).

The common case costs two ``bytes.count`` calls at C speed: a text with no
more ``[`` and ``{`` bytes than the limit cannot nest deeper. Only a text with
more brackets than that is scanned, still without a Python loop per byte:

1. strings are cut out (brackets inside strings do not nest) and everything
   but brackets deleted, leaving a skeleton like ``[[][[]]]``;
2. a run of ``limit + 1`` opening brackets proves the answer at once;
3. a few rounds of ``replace(b"[]", b"")`` each peel exactly one level off
   every subtree (leaves go; what was above them becomes a leaf), so most real
   texts vanish here, and a deep one shows its run;
4. what is left is split at each valley (``][``) into pieces of the form
   ``[^a ]^b``; the deepest point is the largest running depth plus ``a``,
   computed with C-level ``map``/``accumulate`` over the pieces.

Measured on 8 MB hostile texts: 20 ms for pure nesting, 70 ms for ``[]``
repeated, 0.25-0.5 s for 64-deep combs and for 500,000 small objects, against
0.4 µs for an ordinary request.
"""

from __future__ import annotations

import re
from itertools import accumulate, repeat
from operator import add

__all__ = ["nesting_exceeds"]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: ``{`` becomes ``[`` and ``}`` becomes ``]``; every other byte is deleted.
_TO_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_PEEL_ROUNDS = 8


def nesting_exceeds(text: bytes, limit: int) -> bool:
    """True if arrays and objects in ``text`` nest more than ``limit`` levels deep.

    ``[]`` is one level, ``[{}]`` two. Brackets inside JSON strings are ignored.
    ``text`` need not be valid JSON; for invalid text the answer is only a
    bound on how deep a decoder could be led.
    """
    if text.count(b"[") + text.count(b"{") <= limit:
        return False
    skeleton = _strip_strings(text).translate(_TO_BRACKETS, _NOT_BRACKETS)
    peeled = 0
    while peeled < _PEEL_ROUNDS:
        if b"[" * (limit + 1 - peeled) in skeleton:
            return True
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            break
        skeleton, peeled = shorter, peeled + 1
    return bool(skeleton) and _deepest(skeleton) + peeled > limit


def _strip_strings(text: bytes) -> bytes:
    if b"\\" not in text:  # no escapes: every other quote opens a string
        return b"".join(text.split(b'"')[::2])
    return _STRING.sub(b"", text)


def _deepest(skeleton: bytes) -> int:
    pieces = skeleton.replace(b"][", b"]\0[").split(b"\0")
    opens = list(map(bytes.count, pieces, repeat(b"[")))
    closes = list(map(bytes.count, pieces, repeat(b"]")))
    before = accumulate(map(int.__sub__, opens, closes), initial=0)
    deepest: int = max(map(add, before, opens))
    return deepest
