"""eth_getLogs splitting and merging, for arbitrary ranges and limits.

* ``split_range`` chunks are contiguous, in chain order, within the limit, and
  cover exactly the range (so the global cap and the split agree on what fits);
* on a synthetic chain, a node serving each chunk's params (built by
  ``chunk_params`` from the client's raw filter) gives results that
  ``merge_chunks`` joins into the unsplit answer byte for byte, and the filter's
  other members reach every chunk with their bytes unchanged;
* against a node with a hidden limit (blocks, or results) refusing in a real
  provider's words, splitting on each refusal as the shell does (``refusal``,
  nested splits merged again) always ends, and the merged answer is still the
  unsplit one byte for byte.
"""

from __future__ import annotations

import itertools

import msgspec
from hypothesis import assume, given
from hypothesis import strategies as st

from lasso.core.logs_split import cap_error, chunk_params, merge_chunks, refusal, split_range

blocks = st.integers(min_value=0, max_value=2**40)
limits = st.integers(min_value=1, max_value=5_000)


@given(blocks, st.integers(min_value=0, max_value=20_000), limits)
def test_chunks_are_contiguous_ordered_within_the_limit_and_exact(
    from_block: int, width: int, max_range: int
) -> None:
    to_block = from_block + width
    chunks = split_range(from_block, to_block, max_range)
    assert chunks[0][0] == from_block
    assert chunks[-1][1] == to_block
    for low, high in chunks:
        assert low <= high
        assert high - low + 1 <= max_range
        assert cap_error(low, high, max_range) is None
    for (_, high), (low, _) in itertools.pairwise(chunks):
        assert low == high + 1
    assert sum(high - low + 1 for low, high in chunks) == width + 1
    assert len(chunks) == -(-(width + 1) // max_range)  # no more chunks than needed


class Log(msgspec.Struct):
    address: str
    topics: list[str]
    data: str
    blockNumber: str
    transactionHash: str
    logIndex: str
    removed: bool = False


def synthetic_chain(counts: list[int]) -> list[list[bytes]]:
    """Per block, its logs as a node encodes them (compact JSON)."""
    chain = []
    for number, count in enumerate(counts):
        chain.append(
            [
                msgspec.json.encode(
                    Log(
                        address="0x" + f"{number % 7:040x}",
                        topics=["0x" + f"{i:064x}"],
                        data="0x" + "ab" * (i % 3),
                        blockNumber=hex(number),
                        transactionHash="0x" + f"{number * 31 + i:064x}",
                        logIndex=hex(i),
                    )
                )
                for i in range(count)
            ]
        )
    return chain


def serve(chain: list[list[bytes]], params: bytes) -> bytes:
    """An unlimited node's eth_getLogs result for ``params`` (a one-filter array)."""
    (query,) = msgspec.json.decode(params, type=tuple[dict[str, msgspec.Raw]])
    low = int(msgspec.json.decode(query["fromBlock"], type=str), 16)
    high = int(msgspec.json.decode(query["toBlock"], type=str), 16)
    return b"[" + b",".join(log for block in chain[low : high + 1] for log in block) + b"]"


@given(
    st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=80),
    st.data(),
    limits.filter(lambda n: n <= 100),
)
def test_merged_chunks_equal_the_unsplit_result_byte_for_byte(
    counts: list[int], data: st.DataObject, max_range: int
) -> None:
    chain = synthetic_chain(counts)
    from_block = data.draw(st.integers(min_value=0, max_value=len(counts) - 1))
    to_block = data.draw(st.integers(min_value=from_block, max_value=len(counts) - 1))
    other = b'"address":["0xAbC", "0xdef"],"topics":[null, ["0x01","0x02"]]'
    client = b'[{"fromBlock":"%s",%s,"toBlock":"%s"}]' % (
        hex(from_block).encode(),
        other,
        hex(to_block).encode(),
    )
    per_chunk = []
    for chunk in split_range(from_block, to_block, max_range):
        params = chunk_params(client, chunk)
        assert other in params
        per_chunk.append(serve(chain, params))
    assert merge_chunks(per_chunk) == serve(chain, client)


REFUSALS = [
    ("exceed maximum block range: {limit}", -32000, False),  # geth
    ("eth_getLogs is limited to a {limit} range", -32614, False),  # QuickNode
    (
        "Log response size exceeded. You can make eth_getLogs requests with up to a {limit} "
        "block range and no limit on the response size, or you can request any block range "
        "with a cap of 10K logs in the response.",
        -32602,
        True,
    ),  # Alchemy
    ("block range is too wide", -32000, False),  # Ankr
    ("query returned more than {limit} results", -32005, True),  # Infura, counts logs
]


@given(
    st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=80),
    st.data(),
    st.integers(min_value=1, max_value=40),
    st.sampled_from(REFUSALS),
)
def test_splitting_on_refusals_ends_and_merges_to_the_unsplit_result(
    counts: list[int], data: st.DataObject, hidden: int, wording: tuple[str, int, bool]
) -> None:
    chain = synthetic_chain(counts)
    from_block = data.draw(st.integers(min_value=0, max_value=len(counts) - 1))
    to_block = data.draw(st.integers(min_value=from_block, max_value=len(counts) - 1))
    client = b'[{"topics":[null],"fromBlock":"%s","toBlock":"%s"}]' % (
        hex(from_block).encode(),
        hex(to_block).encode(),
    )
    template, code, result_size = wording
    counts_results = "results" in template
    requests = 0

    def fetch(low: int, high: int, width: int) -> bytes:
        nonlocal requests
        parts = []
        for chunk in split_range(low, high, width):
            requests += 1
            assert requests < 10_000
            answer = serve(chain, chunk_params(client, chunk))
            span = chunk[1] - chunk[0] + 1
            size = len(msgspec.json.decode(answer)) if counts_results else span
            if size <= hidden:
                parts.append(answer)
                continue
            taught = refusal(template.format(limit=hidden), code, span, result_size=result_size)
            assert taught is not None  # a refused single block would hold > hidden logs
            assert taught.width < span
            parts.append(fetch(chunk[0], chunk[1], taught.width))
        return merge_chunks(parts)

    # One block holding more logs than the node serves: no split can help.
    assume(not (counts_results and max(counts) > hidden))
    width = to_block - from_block + 1  # first the whole range, as the shell sends it
    assert fetch(from_block, to_block, width) == serve(chain, client)
