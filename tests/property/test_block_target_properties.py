"""Block-target analysis over generated input.

* Any method with any bytes never raises, and always gives a ``BlockTarget``.
* A request built from a generated target (in any of the forms a client may use:
  tag, hex quantity with or without leading zeros, bare hash, EIP-1898 object,
  filter range, omitted optional parameter) reads back as that target.
* The helpers agree with each other: a target's highest block is at or above every
  number it names, and an archival target names ``earliest`` or a deep number.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.block_target import (
    MAX_BLOCK_NUMBER,
    RULES,
    TAGS,
    BlockRef,
    BlockTarget,
    TargetKind,
    block_target,
)

pytestmark = pytest.mark.slow  # Hypothesis runs

METHODS = [*sorted(RULES), "eth_blockNumber", "eth_chainId", "eth_getTransactionByHash"]
BLOCK_METHODS = sorted(m for m, r in RULES.items() if r.shape.value == "block")
HASH_METHODS = sorted(m for m, r in RULES.items() if r.shape.value == "hash")
FILTER_METHODS = sorted(m for m, r in RULES.items() if r.shape.value == "filter")

numbers = st.integers(min_value=0, max_value=MAX_BLOCK_NUMBER)
tags = st.sampled_from(sorted(TAGS))
refs: st.SearchStrategy[BlockRef] = numbers | tags
hashes = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | tags | hashes,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.sampled_from(METHODS), st.binary(max_size=200))
def test_any_bytes_never_raise(method: str, params: bytes) -> None:
    assert isinstance(block_target(method, params), BlockTarget)


@given(st.sampled_from(METHODS), json_values)
def test_any_json_never_raises(method: str, params: object) -> None:
    target = block_target(method, msgspec.json.encode(params))
    assert isinstance(target, BlockTarget)
    assert isinstance(target.is_archival(1_000, 128), bool)
    assert isinstance(target.is_head_sensitive(), bool)


@st.composite
def wire_ref(draw: st.DrawFn, ref: BlockRef) -> str:
    if isinstance(ref, str):
        return ref
    zeros = "0" * draw(st.integers(min_value=0, max_value=3))
    digits = format(ref, "x")
    return "0x" + zeros + (digits.upper() if draw(st.booleans()) else digits)


def _params(position: int, value: object, filler: object) -> bytes:
    return msgspec.json.encode([filler] * position + [value])


@given(st.sampled_from(BLOCK_METHODS), refs, st.data())
def test_block_param_round_trips(method: str, ref: BlockRef, data: st.DataObject) -> None:
    wire = data.draw(wire_ref(ref))
    as_object = data.draw(st.booleans())
    value: object = {"blockNumber": wire} if as_object else wire
    expected = (
        BlockTarget(TargetKind.NUMBER, number=ref)
        if isinstance(ref, int)
        else BlockTarget(TargetKind.TAG, tag=ref)
    )
    got = block_target(method, _params(RULES[method].position, value, {}))
    assert got == expected


@given(st.sampled_from(BLOCK_METHODS), hashes, st.booleans(), st.booleans())
def test_block_param_hash_round_trips(
    method: str, block_hash: str, canonical: bool, as_object: bool
) -> None:
    value: object = (
        {"blockHash": block_hash.upper().replace("0X", "0x"), "requireCanonical": canonical}
        if as_object
        else block_hash
    )
    expected = BlockTarget(
        TargetKind.HASH, block_hash=block_hash, require_canonical=canonical and as_object
    )
    assert block_target(method, _params(RULES[method].position, value, {})) == expected


@given(st.sampled_from(HASH_METHODS), hashes)
def test_hash_methods_round_trip(method: str, block_hash: str) -> None:
    expected = BlockTarget(TargetKind.HASH, block_hash=block_hash)
    assert block_target(method, msgspec.json.encode([block_hash, False])) == expected


@given(st.sampled_from(FILTER_METHODS), st.none() | refs, st.none() | refs, st.data())
def test_filter_round_trips(
    method: str, low: BlockRef | None, high: BlockRef | None, data: st.DataObject
) -> None:
    flt: dict[str, object] = {"address": "0x" + "33" * 20}
    if low is not None:
        flt["fromBlock"] = data.draw(wire_ref(low))
    if high is not None:
        flt["toBlock"] = data.draw(wire_ref(high))
    expected = BlockTarget(
        TargetKind.RANGE,
        low="latest" if low is None else low,
        high="latest" if high is None else high,
    )
    assert block_target(method, msgspec.json.encode([flt])) == expected


@given(st.sampled_from(BLOCK_METHODS))
def test_omitted_block_param_takes_the_default(method: str) -> None:
    rule = RULES[method]
    got = block_target(method, msgspec.json.encode([{}] * rule.position))
    expected = rule.default or BlockTarget(TargetKind.UNKNOWN)
    assert got == expected


@given(
    numbers | tags,
    numbers | tags,
    st.integers(min_value=0, max_value=MAX_BLOCK_NUMBER),
    st.integers(min_value=0, max_value=10_000),
)
def test_helpers_agree(low: BlockRef, high: BlockRef, head: int, threshold: int) -> None:
    target = BlockTarget(TargetKind.RANGE, low=low, high=high)
    highest = target.highest_block(head)
    assert highest is not None
    for ref in (low, high):
        if isinstance(ref, int):
            assert highest >= ref
    deep = any(
        ref == "earliest" or (isinstance(ref, int) and head - ref > threshold)
        for ref in (low, high)
    )
    assert target.is_archival(head, threshold) is deep
