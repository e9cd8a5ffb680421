"""Upstream error classification against error strings real providers send."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from lasso.core.classify import (
    Classification,
    ErrorCategory,
    Reason,
    category_of,
    classify_http_status,
    classify_rpc_error,
    parse_retry_after_header,
)

DET = ErrorCategory.DETERMINISTIC
CAP = ErrorCategory.CAPABILITY
RATE = ErrorCategory.RATE_LIMIT
FAIL = ErrorCategory.PROVIDER_FAILURE


class Row(NamedTuple):
    source: str
    code: int
    message: str
    category: ErrorCategory
    reason: Reason


# Error objects as providers send them. Sources: client source code (geth, erigon, anvil,
# op-stack proxyd), provider documentation, and the reference's captured errors
# (real_provider_block_errors_test.exs, 2026-03-03).
REAL_ERRORS = [
    # geth
    Row("geth eth_call", 3, "execution reverted", DET, Reason.EXECUTION_REVERTED),
    Row(
        "geth eth_call",
        3,
        "execution reverted: ERC20: transfer amount exceeds balance",
        DET,
        Reason.EXECUTION_REVERTED,
    ),
    Row(
        "geth eth_estimateGas",
        -32000,
        "gas required exceeds allowance (30000000)",
        DET,
        Reason.EXECUTION_REVERTED,
    ),
    Row(
        "geth txpool",
        -32000,
        "nonce too low: address 0x71C7656EC7ab88b098defB751B7401B5f6d8976F, tx: 5 state: 7",
        DET,
        Reason.TRANSACTION_REJECTED,
    ),
    Row(
        "geth txpool",
        -32000,
        "insufficient funds for gas * price + value: address "
        "0x71C7656EC7ab88b098defB751B7401B5f6d8976F have 0 want 1000000000000000",
        DET,
        Reason.TRANSACTION_REJECTED,
    ),
    Row(
        "geth txpool",
        -32000,
        "intrinsic gas too low: have 1, want 21000",
        DET,
        Reason.TRANSACTION_REJECTED,
    ),
    Row("geth txpool", -32000, "already known", DET, Reason.TRANSACTION_REJECTED),
    Row(
        "geth txpool",
        -32000,
        "replacement transaction underpriced",
        DET,
        Reason.TRANSACTION_REJECTED,
    ),
    Row(
        "geth txpool",
        -32000,
        "max fee per gas less than block base fee: address "
        "0x71C7656EC7ab88b098defB751B7401B5f6d8976F, maxFeePerGas: 1, baseFee: 7",
        DET,
        Reason.TRANSACTION_REJECTED,
    ),
    Row(
        "geth eth_sendTransaction",
        -32000,
        "tx fee (1.50 ether) exceeds the configured cap (1.00 ether)",
        DET,
        Reason.TRANSACTION_REJECTED,
    ),
    Row(
        "geth argument decoding",
        -32602,
        "invalid argument 0: hex string without 0x prefix",
        DET,
        Reason.INVALID_PARAMS,
    ),
    Row(
        "geth eth_getLogs",
        -32000,
        "invalid block range params",
        DET,
        Reason.INVALID_PARAMS,
    ),
    Row("geth", -32000, "header not found", CAP, Reason.BLOCK_NOT_AVAILABLE),
    Row(
        "geth pruned state",
        -32000,
        "missing trie node 2a7d4e0f9b1c3e5d (path ) state 0x2a7d4e0f is not available",
        CAP,
        Reason.HISTORY_UNAVAILABLE,
    ),
    Row(
        "geth debug_traceTransaction",
        -32000,
        "required historical state unavailable (reexec=128)",
        CAP,
        Reason.HISTORY_UNAVAILABLE,
    ),
    Row(
        "geth",
        -32601,
        "the method eth_fooBarBaz does not exist/is not available",
        CAP,
        Reason.METHOD_NOT_FOUND,
    ),
    Row(
        "geth RPCEVMTimeout",
        -32000,
        "execution aborted (timeout = 5s)",
        CAP,
        Reason.EXECUTION_TIMEOUT,
    ),
    Row("geth handler panic", -32603, "method handler crashed", FAIL, Reason.INTERNAL_ERROR),
    # erigon
    Row(
        "erigon",
        -32000,
        "old data not available due to pruning",
        CAP,
        Reason.HISTORY_UNAVAILABLE,
    ),
    # Nethermind / Besu / Hardhat
    Row("Nethermind", -32015, "VM execution error.", DET, Reason.EXECUTION_REVERTED),
    Row(
        "Hardhat",
        -32603,
        "Error: VM Exception while processing transaction: reverted with reason string 'x'",
        DET,
        Reason.EXECUTION_REVERTED,
    ),
    # anvil
    Row(
        "anvil --prune-history",
        -32602,
        "BlockOutOfRangeError: block height is 24291059 but requested was 24291058",
        CAP,
        Reason.BLOCK_NOT_AVAILABLE,
    ),
    Row(
        "anvil 1.7.1 over WebSocket, unknown method",
        -32602,
        "data did not match any variant of untagged enum EthRpcCall",
        CAP,
        Reason.METHOD_NOT_FOUND,
    ),
    # Alchemy
    Row(
        "Alchemy",
        429,
        "Your app has exceeded its compute units per second capacity. If you have retries "
        "enabled, you can safely ignore this message. If not, check out "
        "https://docs.alchemy.com/reference/throughput",
        RATE,
        Reason.RATE_LIMIT,
    ),
    Row(
        "Alchemy",
        -32600,
        "Monthly capacity limit exceeded. Visit https://dashboard.alchemy.com/settings/billing "
        "to upgrade your scaling policy for continued service.",
        RATE,
        Reason.RATE_LIMIT,
    ),
    Row(
        "Alchemy eth_getLogs",
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
        "range and no limit on the response size, or you can request any block range with a "
        "cap of 10K logs in the response.",
        CAP,
        Reason.RESULT_TOO_LARGE,
    ),
    Row(
        "Alchemy",
        -32600,
        "Unsupported method: eth_foo. See available methods at "
        "https://docs.alchemy.com/alchemy/documentation/apis",
        CAP,
        Reason.METHOD_NOT_FOUND,
    ),
    Row("Alchemy bad key", -32600, "Must be authenticated!", FAIL, Reason.AUTH_ERROR),
    # Infura
    Row("Infura", -32005, "project ID request rate exceeded", RATE, Reason.RATE_LIMIT),
    Row(
        "Infura",
        -32005,
        "daily request count exceeded, request rate limited",
        RATE,
        Reason.RATE_LIMIT,
    ),
    Row(
        "Infura eth_getLogs",
        -32005,
        "query returned more than 10000 results. Try with this block range [0x1a2b3c, 0x1a2d00].",
        CAP,
        Reason.RESULT_TOO_LARGE,
    ),
    # QuickNode
    Row(
        "QuickNode",
        -32007,
        "100/second request limit reached - reduce calls per second or upgrade your account "
        "at quicknode.com",
        RATE,
        Reason.RATE_LIMIT,
    ),
    Row("QuickNode", -32012, "credits limited to 6000/sec", RATE, Reason.RATE_LIMIT),
    Row(
        "QuickNode eth_getLogs",
        -32614,
        "eth_getLogs is limited to a 10,000 range",
        CAP,
        Reason.RANGE_TOO_LARGE,
    ),
    # Chainstack
    Row(
        "Chainstack",
        -32005,
        "You've exceeded the RPS limit available on the current plan.",
        RATE,
        Reason.RATE_LIMIT,
    ),
    # dRPC
    Row(
        "dRPC free tier",
        30,
        "Request timeout on the free tier, please upgrade your tier to the paid one",
        RATE,
        Reason.RATE_LIMIT,
    ),
    Row(
        "dRPC free tier",
        35,
        "ranges over 10000 blocks are not supported on freetier",
        CAP,
        Reason.RANGE_TOO_LARGE,
    ),
    Row("dRPC", 26, "Unknown block", CAP, Reason.BLOCK_NOT_AVAILABLE),
    # PublicNode
    Row(
        "PublicNode",
        -32701,
        "Please specify an address in your request or, to remove restrictions, order a "
        "dedicated full node here: https://www.allnodes.com/eth/host",
        CAP,
        Reason.UNSUPPORTED,
    ),
    Row(
        "PublicNode, BlockPI, bloXroute",
        -32000,
        "header not found",
        CAP,
        Reason.BLOCK_NOT_AVAILABLE,
    ),
    # block lag, captured by the reference
    Row(
        "Merkle, 1RPC, LlamaRPC",
        -32001,
        "block not found: 0x1770b2b",
        CAP,
        Reason.BLOCK_NOT_AVAILABLE,
    ),
    Row("OnFinality", -32602, "Unknown block number", CAP, Reason.BLOCK_NOT_AVAILABLE),
    Row(
        "Lava (no rule knows it)",
        -32000,
        "24578859 could not be found",
        CAP,
        Reason.UNCLASSIFIED_SERVER_ERROR,
    ),
    Row(
        "LlamaRPC",
        -32603,
        "eth_getLogs range is too large, max is 1k blocks",
        CAP,
        Reason.RANGE_TOO_LARGE,
    ),
    Row("Ankr", -32000, "block range is too wide", CAP, Reason.RANGE_TOO_LARGE),
    Row("generic", -32000, "exceed maximum block range: 50000", CAP, Reason.RANGE_TOO_LARGE),
    Row(
        "generic",
        -32000,
        "requested block number 12 is greater than current head block number 11",
        CAP,
        Reason.BLOCK_NOT_AVAILABLE,
    ),
    Row("EIP-1474", -32005, "limit exceeded", RATE, Reason.RATE_LIMIT),
    Row("generic", -32603, "Internal error", FAIL, Reason.INTERNAL_ERROR),
    # op-stack proxyd (Base and Optimism official endpoints): codes -32001..-32019
    Row("proxyd", -32016, "over rate limit", RATE, Reason.RATE_LIMIT),
    Row("proxyd", -32012, "backend is over capacity", RATE, Reason.RATE_LIMIT),
    Row("proxyd", -32015, "gateway timeout", FAIL, Reason.TIMEOUT),
    Row("proxyd", -32010, "backend offline", FAIL, Reason.UNAVAILABLE),
    Row("proxyd", -32011, "no backends available for method", FAIL, Reason.UNAVAILABLE),
    Row(
        "proxyd",
        -32018,
        "backend is currently not healthy to serve traffic",
        FAIL,
        Reason.UNAVAILABLE,
    ),
    Row("proxyd", -32001, "rpc method is not whitelisted", CAP, Reason.METHOD_NOT_FOUND),
    Row("proxyd", -32019, "block is out of range", CAP, Reason.BLOCK_NOT_AVAILABLE),
    Row(
        "proxyd",
        -32014,
        "too many RPC calls in batch request",
        CAP,
        Reason.REQUEST_TOO_LARGE,
    ),
    Row("proxyd", -32020, "backend response too large", CAP, Reason.RESULT_TOO_LARGE),
]


@pytest.mark.parametrize("row", REAL_ERRORS, ids=lambda r: f"{r.source}:{r.code}:{r.message[:40]}")
def test_real_provider_errors(row: Row) -> None:
    got = classify_rpc_error(row.code, row.message, None)
    assert (got.category, got.reason) == (row.category, row.reason)


def test_table_is_large_enough() -> None:
    assert len(REAL_ERRORS) >= 30


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # A contract may revert with any string; the revert wins.
        ("execution reverted: rate limit exceeded", Reason.EXECUTION_REVERTED),
        ("execution reverted: Too many requests", Reason.EXECUTION_REVERTED),
        ("max fee per gas exceeds the maximum", Reason.TRANSACTION_REJECTED),
        ("max code size exceeded", Reason.EXECUTION_REVERTED),
        # The catch-all "exceeded" comes after capability rules.
        ("batch limit exceeded", Reason.REQUEST_TOO_LARGE),
        ("some quota exceeded", Reason.RATE_LIMIT),
        ("result limit exceeded", Reason.RESULT_TOO_LARGE),
        ("unknown blockchain", Reason.UNCLASSIFIED_SERVER_ERROR),
        ("Too many requests, please try again in 5 seconds", Reason.RATE_LIMIT),
        ("service temporarily unavailable", Reason.UNAVAILABLE),
        ("node is syncing", Reason.BLOCK_NOT_AVAILABLE),
        ("archive node required", Reason.HISTORY_UNAVAILABLE),
        ("debug namespace not enabled", Reason.UNSUPPORTED),
        ("", Reason.UNCLASSIFIED_SERVER_ERROR),
    ],
)
def test_message_rule_order(message: str, reason: Reason) -> None:
    assert classify_rpc_error(-32000, message, None).reason is reason


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (3, Reason.EXECUTION_REVERTED),
        (-32700, Reason.PARSE_ERROR),
        (-32600, Reason.INVALID_REQUEST),
        (-32601, Reason.METHOD_NOT_FOUND),
        (-32602, Reason.INVALID_PARAMS),
        (-32603, Reason.INTERNAL_ERROR),
        (-32000, Reason.UNCLASSIFIED_SERVER_ERROR),
        (-32001, Reason.RESOURCE_NOT_FOUND),
        (-32002, Reason.UNAVAILABLE),
        (-32003, Reason.TRANSACTION_REJECTED),
        (-32004, Reason.METHOD_NOT_FOUND),
        (-32005, Reason.RATE_LIMIT),
        (-32046, Reason.RATE_LIMIT),
        (-32701, Reason.UNSUPPORTED),
        (-32050, Reason.SERVER_ERROR),
        (-32099, Reason.SERVER_ERROR),
        (-32100, Reason.UNKNOWN_ERROR),
        (26, Reason.BLOCK_NOT_AVAILABLE),
        (30, Reason.RATE_LIMIT),
        (35, Reason.RANGE_TOO_LARGE),
        (14, Reason.SERVER_ERROR),
        (-31002, Reason.SERVER_ERROR),
        (12345, Reason.UNKNOWN_ERROR),
    ],
)
def test_code_table_when_the_message_says_nothing(code: int, reason: Reason) -> None:
    got = classify_rpc_error(code, "error", None)
    assert got == Classification(category_of(reason), reason, None)


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        (Reason.EXECUTION_REVERTED, DET),
        (Reason.PARSE_ERROR, DET),
        (Reason.UNCLASSIFIED_SERVER_ERROR, CAP),
        (Reason.REQUEST_TOO_LARGE, CAP),
        (Reason.RATE_LIMIT, RATE),
        (Reason.AUTH_ERROR, FAIL),
        (Reason.UNKNOWN_ERROR, FAIL),
    ],
)
def test_category_of(reason: Reason, category: ErrorCategory) -> None:
    assert category_of(reason) is category


@pytest.mark.parametrize(
    "data",
    [
        b'"0x08c379a0' + b"00" * 64 + b'"',
        b'"0x4e487b71' + b"00" * 32 + b'"',
        b'"0x08C379A0' + b"00" * 64 + b'"',
        b'{"data": "0x08c379a0' + b"00" * 64 + b'"}',
    ],
)
def test_revert_data_wins_over_any_message(data: bytes) -> None:
    got = classify_rpc_error(-32000, "rate limit exceeded", data)
    assert got == Classification(DET, Reason.EXECUTION_REVERTED, None)


@pytest.mark.parametrize("data", [b'"0xdeadbeef00"', b'"0x08c3"', b"{}", b"not json", b""])
def test_other_data_falls_through(data: bytes) -> None:
    assert classify_rpc_error(-32000, "rate limit", data).category is RATE


@pytest.mark.parametrize(
    ("code", "message", "data", "retry_after_ms"),
    [
        (
            -32005,
            "project ID request rate exceeded",
            b'{"see": "https://infura.io/docs/ethereum/jsonrpc/ratelimits", '
            b'"current_rps": 13.333, "allowed_rps": 10.0, "backoff_seconds": 30.0}',
            30_000,
        ),
        (-32005, "rate limited", b'{"retry_after": 3}', 3_000),
        (-32005, "rate limited", b'{"retry_after": "2.5"}', 2_500),
        (-32005, "rate limited", b'{"retry_after_ms": 750, "retry_after": 9}', 750),
        (-32005, "rate limited", b'{"retry_after": true}', None),
        (-32005, "rate limited", b'{"retry_after": -1}', None),
        (-32005, "rate limited", b'"please try again in 4 seconds"', 4_000),
        (-32005, "Too many requests, try again in 5 seconds", None, 5_000),
        (-32005, "Rate limit hit. Retry after 2s", None, 2_000),
        (-32005, "rate limit: retry in 500ms", None, 500),
        (-32005, "quota reached, try again in 1 minute", None, 60_000),
        (-32005, "rate limited; try again in 2 mins", None, 120_000),
        (-32005, "rate limited, try again in 1.5 seconds", None, 1_500),
        (-32005, "rate limited", None, None),
        (-32603, "temporarily unavailable, please retry in 3 seconds", None, 3_000),
        # data beats message
        (-32005, "try again in 9 seconds", b'{"retry_after": 1}', 1_000),
        # only rate limits and provider failures carry a retry-after
        (3, "execution reverted: try again in 5 seconds", None, None),
        (-32000, "header not found", b'{"retry_after": 1}', None),
    ],
)
def test_retry_after_extraction(
    code: int, message: str, data: bytes | None, retry_after_ms: int | None
) -> None:
    assert classify_rpc_error(code, message, data).retry_after_ms == retry_after_ms


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (200, None, None),
        (204, None, None),
        (429, None, Classification(RATE, Reason.RATE_LIMIT, None)),
        (429, "7", Classification(RATE, Reason.RATE_LIMIT, 7_000)),
        (429, " 0 ", Classification(RATE, Reason.RATE_LIMIT, 0)),
        (429, "soon", Classification(RATE, Reason.RATE_LIMIT, None)),
        (408, None, Classification(FAIL, Reason.TIMEOUT, None)),
        (500, None, Classification(FAIL, Reason.SERVER_ERROR, None)),
        (502, None, Classification(FAIL, Reason.SERVER_ERROR, None)),  # Cloudflare HTML page
        (503, "120", Classification(FAIL, Reason.SERVER_ERROR, 120_000)),
        (520, None, Classification(FAIL, Reason.SERVER_ERROR, None)),  # Cloudflare unknown
        (522, None, Classification(FAIL, Reason.SERVER_ERROR, None)),  # Cloudflare origin timeout
        (524, None, Classification(FAIL, Reason.SERVER_ERROR, None)),
        (401, None, Classification(FAIL, Reason.AUTH_ERROR, None)),
        (403, None, Classification(FAIL, Reason.AUTH_ERROR, None)),
        (404, None, Classification(FAIL, Reason.HTTP_CLIENT_ERROR, None)),
        (400, None, Classification(FAIL, Reason.HTTP_CLIENT_ERROR, None)),
        (413, None, Classification(CAP, Reason.REQUEST_TOO_LARGE, None)),
        (301, None, Classification(FAIL, Reason.UNEXPECTED_STATUS, None)),
        (101, None, Classification(FAIL, Reason.UNEXPECTED_STATUS, None)),
    ],
)
def test_classify_http_status(
    status: int, header: str | None, expected: Classification | None
) -> None:
    assert classify_http_status(status, header) == expected


WALL_NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("header", "wall_now_s", "retry_after_ms"),
    [
        ("Wed, 21 Oct 2015 07:28:30 GMT", WALL_NOW, 30_000),
        ("Wed, 21 Oct 2015 07:28:00 GMT", WALL_NOW, 0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", WALL_NOW, 0),  # in the past: go now
        ("Wed, 21 Oct 2015 07:28:30 GMT", None, None),  # no clock: cannot tell
        ("Wed, 21 Oct 2015 07:28:30", WALL_NOW, None),  # no zone: not an HTTP-date
        ("31 Feb", WALL_NOW, None),
        ("", WALL_NOW, None),
        ("1.5", None, 1_500),
        ("-3", None, None),
        ("nan", None, None),
        ("inf", None, None),
    ],
)
def test_parse_retry_after_header(
    header: str, wall_now_s: float | None, retry_after_ms: int | None
) -> None:
    assert parse_retry_after_header(header, wall_now_s) == retry_after_ms


def test_http_429_with_an_http_date() -> None:
    got = classify_http_status(429, "Wed, 21 Oct 2015 07:28:05 GMT", wall_now_s=WALL_NOW)
    assert got == Classification(RATE, Reason.RATE_LIMIT, 5_000)


def test_long_messages_are_only_read_so_far() -> None:
    message = "x" * 5000 + " rate limit"
    assert classify_rpc_error(-32603, message, None).reason is Reason.INTERNAL_ERROR


# Invalid params from a healthy node is its verdict on the request: one call, returned.
# Only "this node lacks the data / the method" fails over (a lagging node may differ).
INVALID_PARAMS_VERDICTS = [
    ("anvil", "invalid string length", DET),
    ("anvil", "invalid length 0, expected tuple variant EthRequest::EthGetBlockByNumber", DET),
    ("anvil", "invalid type: number, expected unit", DET),
    ("made up", "invalid params: rate limit field must be a number", DET),
    ("made up", "invalid params: connection id must be hex", DET),
    ("made up", "invalid timeout value", DET),
    ("anvil", "BlockOutOfRangeError: block height is 1 but requested was 5", CAP),
    ("anvil ws", "data did not match any variant of untagged enum EthRpcCall", CAP),
    ("geth", "header not found", CAP),
]


@pytest.mark.parametrize(("source", "message", "category"), INVALID_PARAMS_VERDICTS)
def test_invalid_params_is_authoritative_unless_the_node_lacks_data(
    source: str, message: str, category: ErrorCategory
) -> None:
    assert classify_rpc_error(-32602, message, None).category is category, source


@pytest.mark.parametrize(
    "message",
    [
        "already known",
        "known transaction: 0xabc",
        "transaction already imported",
        "AlreadyKnown",
        "ALREADY_EXISTS: already known",
        "transaction already in pool",
        "tx already in mempool",
    ],
)
def test_every_already_known_wording_is_a_transaction_rejection(message: str) -> None:
    # Deterministic: no other provider is tried for it; lasso.transactions then answers
    # the client with the transaction's hash (the node already has it).
    result = classify_rpc_error(-32000, message, None)
    assert result.reason is Reason.TRANSACTION_REJECTED
    assert result.category is ErrorCategory.DETERMINISTIC
