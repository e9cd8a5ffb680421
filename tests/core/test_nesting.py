"""The nesting-depth measure against a plain reference scan."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from lasso.core.nesting import nesting_exceeds

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def reference_depth(text: bytes) -> int:
    depth = deepest = 0
    for byte in _STRING.sub(b"", text):
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def test_levels_and_strings() -> None:
    assert not nesting_exceeds(b"[[]]", 2)
    assert nesting_exceeds(b"[[[]]]", 2)
    assert nesting_exceeds(b'{"a":[{"b":[]}]}', 3)
    assert not nesting_exceeds(b'["[[[[[[",{"a":[]}]', 3)
    assert not nesting_exceeds(b'["\\"[[[[["]', 1)
    assert nesting_exceeds(b"[" * 100_000, 64)


def test_valleys_after_peeling() -> None:
    # Eleven-level subtrees side by side survive the eight peeling rounds.
    comb = b"[" + (b"[" * 10 + b"]" * 10) * 50 + b"]"
    assert not nesting_exceeds(comb, 11)
    assert nesting_exceeds(comb, 10)


_TOKENS = st.sampled_from([b"[", b"{", b"]", b"}", b'"[["', b'"\\"["', b"1", b","])


@given(st.lists(_TOKENS, max_size=400), st.integers(min_value=1, max_value=40))
def test_agrees_with_the_reference(tokens: list[bytes], limit: int) -> None:
    # Balanced prefixes only: for invalid JSON the measure is just a bound.
    depth, kept = 0, []
    for token in tokens:
        if token in (b"]", b"}"):
            if depth == 0:
                continue
            depth -= 1
        elif token in (b"[", b"{"):
            depth += 1
        kept.append(token)
    text = b"".join(kept) + b"]" * depth
    assert nesting_exceeds(text, limit) == (reference_depth(text) > limit)
