"""eth_getLogs splitting, per-chunk params, merging, learned limits and the global cap:
exact tables, including real provider wordings."""

from __future__ import annotations

import msgspec
import pytest

from lasso.core.block_target import BlockRef
from lasso.core.classify import ErrorCategory, Reason, classify_rpc_error
from lasso.core.logs_split import (
    Refusal,
    cap_error,
    cap_window,
    chunk_params,
    is_range_error,
    learned_range_limit,
    merge_chunks,
    narrowed_range,
    needs_head,
    refusal,
    split_range,
    window,
)
from lasso.errors import InvalidParams


@pytest.mark.parametrize(
    ("from_block", "to_block", "max_range", "chunks"),
    [
        (0, 0, 1, [(0, 0)]),
        (5, 5, 10_000, [(5, 5)]),
        (0, 9, 10, [(0, 9)]),
        (0, 10, 10, [(0, 9), (10, 10)]),
        (0, 19_999, 10_000, [(0, 9_999), (10_000, 19_999)]),
        (1, 20_001, 10_000, [(1, 10_000), (10_001, 20_000), (20_001, 20_001)]),
        (100, 104, 2, [(100, 101), (102, 103), (104, 104)]),
        (7, 9, 1, [(7, 7), (8, 8), (9, 9)]),
    ],
)
def test_split_range_counts_blocks(
    from_block: int, to_block: int, max_range: int, chunks: list[tuple[int, int]]
) -> None:
    assert split_range(from_block, to_block, max_range) == chunks


@pytest.mark.parametrize(
    ("from_block", "to_block", "max_range"), [(5, 4, 10), (0, 1, 0), (-1, 3, 2)]
)
def test_split_range_refuses_what_is_not_a_range(
    from_block: int, to_block: int, max_range: int
) -> None:
    with pytest.raises(ValueError):
        split_range(from_block, to_block, max_range)


FILTER = (
    b'{"address":["0x5FbDB2315678afecb367f032d93F642f64180aa3", "0xAbC0000000000000000000000000000000000001"],'
    b'"fromBlock":"earliest","toBlock":"latest","topics":[null,["0x00ff"],  null]}'
)


def test_chunk_params_rewrites_only_the_block_members_in_place() -> None:
    assert chunk_params(FILTER, (16, 31)) == (
        b'{"address":["0x5FbDB2315678afecb367f032d93F642f64180aa3", "0xAbC0000000000000000000000000000000000001"],'
        b'"fromBlock":"0x10","toBlock":"0x1f","topics":[null,["0x00ff"],  null]}'
    )


def test_chunk_params_adds_missing_block_members_at_the_end() -> None:
    assert chunk_params(b'{"topics":[ "0xab" ]}', (0, 9)) == (
        b'{"topics":[ "0xab" ],"fromBlock":"0x0","toBlock":"0x9"}'
    )


def test_chunk_params_keeps_the_params_array_shape() -> None:
    assert chunk_params(b'[{"address":"0xAA","fromBlock":"0x1"}]', (2, 3)) == (
        b'[{"address":"0xAA","fromBlock":"0x2","toBlock":"0x3"}]'
    )


@pytest.mark.parametrize(
    "params",
    [b'{"blockHash":"0x01"}', b"[]", b'[{"a":1},{"b":2}]', b"null", b'"x"', b"{", b"[1]"],
)
def test_chunk_params_refuses_what_cannot_be_split(params: bytes) -> None:
    with pytest.raises(ValueError):
        chunk_params(params, (0, 1))


def test_merge_chunks_concatenates_in_order_keeping_each_log_bytes() -> None:
    a = b'[{"blockNumber":"0x1","logIndex":"0x0"},{"blockNumber":"0x1","logIndex":"0x1"}]'
    b = b"[]"
    c = b'[ {"blockNumber" : "0x3", "logIndex":"0x0"} ]'
    assert merge_chunks([a, b, c]) == (
        b'[{"blockNumber":"0x1","logIndex":"0x0"},{"blockNumber":"0x1","logIndex":"0x1"},'
        b'{"blockNumber" : "0x3", "logIndex":"0x0"}]'
    )
    assert merge_chunks([]) == b"[]"
    assert merge_chunks([b"[]", b"[]"]) == b"[]"


@pytest.mark.parametrize("bad", [b"null", b"{}", b"", b"[1,", b'"[]"'])
def test_merge_chunks_refuses_a_chunk_that_is_not_an_array(bad: bytes) -> None:
    with pytest.raises(ValueError):
        merge_chunks([b"[]", bad])


ALCHEMY = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
    "and no limit on the response size, or you can request any block range with a cap of 10K logs "
    "in the response. Based on your parameters, this block range should work: [0x0, 0x4a2d]"
)


@pytest.mark.parametrize(
    ("message", "code", "limit"),
    [
        ("exceed maximum block range: 10000", -32000, 10_000),  # geth --rpc.rangelimit
        ("exceed maximum block range: 50000", -32000, 50_000),  # publicnode, BSC
        ("block range is too wide", -32000, None),
        ("query returned more than 10000 results", -32005, None),  # counts logs, not blocks
        (
            "query returned more than 10000 results. Try with this block range "
            "[0x1E8480, 0x1E9A2F].",
            -32005,
            0x1E9A2F - 0x1E8480 + 1,
        ),  # Infura
        (ALCHEMY, -32602, 2_000),
        (
            "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block "
            "range. Based on your parameters, this block range should work: [0x1, 0xa]",
            -32600,
            10,
        ),  # Alchemy free tier
        ("range too large, max range: 2000", -32000, 2_000),
        ("eth_getLogs is limited to a 10,000 range", -32602, 10_000),  # QuickNode
        ("eth_getLogs and eth_newFilter are limited to a 10,000 blocks range", -32614, 10_000),
        ("ranges over 10000 blocks are not supported on freetier", 35, 10_000),  # dRPC
        ("query exceeds max block range 100000", -32000, 100_000),
        ("block range too large: maximum is 1000 blocks", -32000, 1_000),
        ("Block range limit exceeded", -32000, None),
        ("block span 5001 for eth_getLogs exceeds the limit 5000", -32000, 5_000),
        ("Maximum allowed range is 3k", -32602, 3_000),
        ("execution reverted", 3, None),
        ("the method eth_getLogs does not exist/is not available", -32601, None),
        ("exceed maximum block range: 0", -32000, None),
    ],
)
def test_learned_range_limit_from_real_wordings(message: str, code: int, limit: int | None) -> None:
    assert learned_range_limit(message, code) == limit


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [
        ("block range is too wide", -32000, True),
        ("query returned more than 10000 results", -32005, True),
        ("limit exceeded", -32005, True),
        ("limit exceeded", -32000, False),
        ("header not found", -32000, False),
        ("block range is too wide", -32601, False),
    ],
)
def test_is_range_error(message: str, code: int, expected: bool) -> None:
    assert is_range_error(message, code) is expected


def test_narrowed_range_halves_down_to_one() -> None:
    assert [narrowed_range(s) for s in (10_000, 3, 2, 1)] == [5_000, 1, 1, 1]


def test_cap_error_counts_blocks_like_the_split() -> None:
    assert cap_error(0, 9_999, 10_000) is None
    assert cap_error(5, 4, 10) is None  # inverted: the node answers that itself
    assert cap_error(0, 10**9, None) is None
    error = cap_error(0, 10_000, 10_000)
    assert isinstance(error, InvalidParams)
    assert error.code == -32602
    assert error.message == (
        "eth_getLogs block range too large: 10001 blocks requested, "
        "the maximum is 10000 (max_logs_block_range)"
    )
    assert (
        msgspec.json.encode(error.data) == b'{"from_block":"0x0","to_block":"0x2710","max":10000}'
    )


# --- the real refusals the brief names: each is a capability range error, and teaches ---

ALCHEMY_SHORT = (
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range "
    "and no limit on the response size, or you can request any block range with a cap of 10K logs "
    "in the response."
)


@pytest.mark.parametrize(
    ("code", "message", "reason", "limit", "taught"),
    [
        (-32602, ALCHEMY_SHORT, Reason.RESULT_TOO_LARGE, 2_000, Refusal(2_000, 2_000)),
        (
            -32005,
            "query returned more than 10000 results",
            Reason.RESULT_TOO_LARGE,
            None,
            Refusal(10_000, None),
        ),
        (
            -32614,
            "eth_getLogs is limited to a 10,000 range",
            Reason.RANGE_TOO_LARGE,
            10_000,
            Refusal(10_000, 10_000),
        ),
        (
            -32602,
            "eth_getLogs is limited to a 10,000 range",
            Reason.RANGE_TOO_LARGE,
            10_000,
            Refusal(10_000, 10_000),
        ),
        (
            -32000,
            "exceed maximum block range: 5000",
            Reason.RANGE_TOO_LARGE,
            5_000,
            Refusal(5_000, 5_000),
        ),
        (-32000, "block range is too wide", Reason.RANGE_TOO_LARGE, None, Refusal(10_000, 10_000)),
        (-32600, "block range is too wide", Reason.RANGE_TOO_LARGE, None, Refusal(10_000, 10_000)),
        (
            -32000,
            "range too large, max range: 2000",
            Reason.RANGE_TOO_LARGE,
            2_000,
            Refusal(2_000, 2_000),
        ),
        (
            -32000,
            "requested range too large",
            Reason.RANGE_TOO_LARGE,
            None,
            Refusal(10_000, 10_000),
        ),
        (-32602, "block range too large", Reason.RANGE_TOO_LARGE, None, Refusal(10_000, 10_000)),
    ],
)
def test_real_refusals_are_capability_range_errors_that_teach_a_limit(
    code: int, message: str, reason: Reason, limit: int | None, taught: Refusal
) -> None:
    classified = classify_rpc_error(code, message, None)
    assert classified.category is ErrorCategory.CAPABILITY  # never a breaker failure
    assert classified.reason is reason
    assert is_range_error(message, code)
    assert learned_range_limit(message, code) == limit
    result_size = reason is Reason.RESULT_TOO_LARGE
    assert refusal(message, code, 20_000, result_size=result_size) == taught


def test_refusal_always_narrows_and_keeps_only_provider_facts() -> None:
    # A stated limit at or over the refused span is not believed: halve instead.
    assert refusal("exceed maximum block range: 5000", -32000, 300, result_size=False) == Refusal(
        150, 150
    )
    # A suggested range holds for this query's density only.
    infura = "query returned more than 10000 results. Try with this block range [0x10, 0x1f]."
    assert refusal(infura, -32005, 100, result_size=True) == Refusal(16, None)
    # Too many results, nothing stated: halve for this request, keep nothing.
    assert refusal("too many results", -32000, 7, result_size=True) == Refusal(3, None)
    # One block refused: nothing narrower.
    assert refusal("block range is too wide", -32000, 1, result_size=False) is None


@pytest.mark.parametrize(
    ("low", "high", "head", "needs", "split", "capped"),
    [
        (0, 9, None, False, (0, 9), (0, 9)),
        ("earliest", 9, None, False, (0, 9), (0, 9)),
        ("earliest", "latest", 50, True, (0, 50), (0, 50)),
        ("latest", "latest", None, False, None, None),
        (3, "latest", 50, True, (3, 50), (3, 50)),
        ("latest", 3, 50, True, (50, 3), (50, 3)),
        (3, "safe", 50, True, None, (3, 50)),
        (3, "pending", 50, True, None, (3, 50)),
        ("finalized", "latest", 50, True, None, (50, 50)),
        (3, "latest", None, True, None, None),
    ],
)
def test_windows_resolve_tags_against_the_head(
    low: BlockRef,
    high: BlockRef,
    head: int | None,
    needs: bool,
    split: tuple[int, int] | None,
    capped: tuple[int, int] | None,
) -> None:
    assert needs_head(low, high) is needs
    assert window(low, high, head) == split
    assert cap_window(low, high, head) == capped
