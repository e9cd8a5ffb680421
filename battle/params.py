"""Parameter strategies: valid values drawn from :class:`ChainData`, and edge cases.

Valid values are block numbers, tags, hashes and EIP-1898 objects, transaction
hashes, funded and empty addresses, call objects to the emitter and the reverter
and log filters, all of the seeded chain. :func:`junk` is the edge cases: null,
``[]``, ``{}``, wrong types, malformed hex, negative numbers, 2**70, long
strings, deep nesting and unicode. Sizes stay bounded (``Sizes``) so a run is fast.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

from battle.chaindata import ChainData

S = st.SearchStrategy
TAGS = ("latest", "earliest", "pending", "safe", "finalized")
UNKNOWN_HASH = "0x" + "de" * 32


class Sizes(msgspec.Struct, frozen=True):
    """How big edge cases get: ``big()`` for the 1 MB strings of a full battle."""

    max_string: int = 4096
    max_depth: int = 96  # past the gateway's default max_json_depth (64) on purpose

    @classmethod
    def big(cls) -> Sizes:
        return cls(max_string=1_000_000)


SMALL = Sizes()


def quantity(n: int) -> str:
    return hex(n)


def junk(sizes: Sizes = SMALL) -> S[Any]:
    """A value that is wrong almost anywhere a param is expected."""
    scalars: S[Any] = st.one_of(
        st.sampled_from(
            [None, [], {}, True, False, 0, -1, 1.5, "", "0x", "0x0", "0xzz", "-0x1", "0x-1"]
        ),
        st.sampled_from([2**70, -(2**70), "0x" + "f" * 70, hex(2**70), "0X1", " 0x1", "1e3"]),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.text(max_size=40),
        st.sampled_from(["ünïcødé ☃ 𝄞", "\u0000", "\ud7ff\ue000", "🦀" * 20, 'quo"te\\']),
        st.integers(min_value=0, max_value=sizes.max_string).map(lambda n: "a" * n),
        st.integers(min_value=0, max_value=sizes.max_string // 2).map(lambda n: "0x" + "ab" * n),
    )
    return st.one_of(
        scalars,
        st.integers(min_value=1, max_value=sizes.max_depth).map(_nested),
        st.lists(scalars, max_size=4),
        st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    )


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def block_number(data: ChainData) -> S[str]:
    """A block number in hex: one of the chain's, or a few past its head."""
    return st.integers(min_value=0, max_value=data.head + 3).map(quantity)


def block_hash(data: ChainData) -> S[str]:
    return st.one_of(st.sampled_from(data.block_hashes), st.just(UNKNOWN_HASH))


def block_tag(data: ChainData) -> S[str]:
    return st.one_of(block_number(data), st.sampled_from(TAGS))


def block_ref(data: ChainData) -> S[Any]:
    """A block as a state method takes it: a number, a tag or an EIP-1898 object."""
    eip1898: S[dict[str, Any]] = st.one_of(
        block_number(data).map(lambda n: {"blockNumber": n}),
        st.builds(
            lambda h, canonical: {"blockHash": h} | ({} if canonical is None else canonical),
            block_hash(data),
            st.one_of(st.none(), st.booleans().map(lambda b: {"requireCanonical": b})),
        ),
    )
    return st.one_of(block_tag(data), eip1898)


def tx_hash(data: ChainData) -> S[str]:
    return st.one_of(st.sampled_from(data.tx_hashes), st.just(UNKNOWN_HASH))


def address(data: ChainData) -> S[str]:
    return st.sampled_from(data.addresses)


def index(data: ChainData) -> S[str]:
    return st.integers(min_value=0, max_value=3).map(quantity)


def slot() -> S[str]:
    return st.one_of(st.integers(0, 2).map(quantity), st.just("0x" + "00" * 32))


def call_object(data: ChainData) -> S[dict[str, Any]]:
    """A call to the emitter (logs), the reverter (reverts) or a plain account."""
    to = st.sampled_from((data.emitter, data.reverter, *data.funded[:1], *data.empty[:1]))
    calldata = st.one_of(st.just("0x"), st.binary(max_size=40).map(lambda b: "0x" + b.hex()))
    optional = st.fixed_dictionaries(
        {},
        optional={
            "from": address(data),
            "gas": st.sampled_from(["0x5208", "0x186a0", "0x1"]),
            "value": st.sampled_from(["0x0", "0x1", hex(10**30)]),
        },
    )
    return st.builds(lambda t, d, o: {"to": t, "data": d} | o, to, calldata, optional)


def log_filter(data: ChainData) -> S[dict[str, Any]]:
    """An ``eth_getLogs`` / ``eth_newFilter`` filter over the chain."""
    bounds = st.fixed_dictionaries(
        {}, optional={"fromBlock": block_tag(data), "toBlock": block_tag(data)}
    )
    by_hash = block_hash(data).map(lambda h: {"blockHash": h})
    where = st.fixed_dictionaries(
        {},
        optional={
            "address": st.one_of(address(data), st.lists(address(data), max_size=3)),
            "topics": st.lists(
                st.one_of(st.none(), st.just(data.topic), st.just(UNKNOWN_HASH)), max_size=3
            ),
        },
    )
    return st.builds(lambda b, w: b | w, st.one_of(bounds, by_hash), where)


def tracer() -> S[dict[str, Any]]:
    return st.sampled_from(
        [{}, {"tracer": "callTracer"}, {"tracer": "prestateTracer"}, {"disableStorage": True}]
    )
