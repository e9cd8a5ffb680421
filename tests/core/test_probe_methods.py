"""What an answer to a probe says: unsupported only when the node says so."""

from __future__ import annotations

import msgspec
import pytest

from lasso.core.classify import classify_rpc_error
from lasso.core.probe_methods import (
    METHODS,
    ProbeContext,
    Verdict,
    method_verdict,
    state_refused,
)


def verdict(code: int, message: str) -> Verdict:
    return method_verdict(code, classify_rpc_error(code, message, None).reason)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32601, "Method not found"),  # anvil, geth over HTTP
        (-32000, "the method trace_call does not exist/is not available"),  # geth
        (-32601, "the method debug_traceCall does not exist/is not available"),
        (-32000, "method not supported"),
        (-32004, "Method not supported"),  # EIP-1474
        (-32000, "trace_block is not supported on this network"),
        (-32600, "did not match any variant of untagged enum EthRpcCall"),  # anvil over WS
    ],
)
def test_method_not_found_and_not_supported_are_unsupported(code: int, message: str) -> None:
    assert verdict(code, message) is Verdict.UNSUPPORTED


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32602, "invalid argument 0: hex string has length 2, want 64"),
        (-32602, "BlockOutOfRangeError: block height is 80 but requested was 1"),
        (-32602, "block tag 'safe' is not supported"),  # a params verdict, not the method
        (3, "execution reverted"),
        (-32000, "missing trie node 1234 (path ) state 0x12 is not available"),
        (-32000, "header not found"),
        (-32000, "exceed maximum block range: 50"),
        (-32000, "transaction not found"),
    ],
)
def test_any_other_answer_shows_the_method_exists(code: int, message: str) -> None:
    assert verdict(code, message) is Verdict.SUPPORTED


@pytest.mark.parametrize(
    ("code", "message"),
    [(-32005, "rate limit exceeded"), (-32603, "internal error"), (-32000, "timeout")],
)
def test_rate_limits_and_failures_say_nothing(code: int, message: str) -> None:
    assert verdict(code, message) is Verdict.UNKNOWN


def test_an_unknown_reason_is_unknown() -> None:
    assert method_verdict(-32000, "") is Verdict.UNKNOWN


def test_pruned_state_answers_are_recognised() -> None:
    for message in (
        "BlockOutOfRangeError: block height is 80 but requested was 1",  # anvil
        "missing trie node abc (path ) state is not available",  # geth
        "header not found",
        "historical state not available",
    ):
        assert state_refused(classify_rpc_error(-32000, message, None).reason), message
    assert not state_refused(classify_rpc_error(-32603, "internal error", None).reason)


def test_every_probe_is_built_from_the_context_and_encodes() -> None:
    context = ProbeContext(head=80, block_hash="0x" + "ab" * 32, tx_hash="0x" + "cd" * 32)
    names = [name for name, _ in METHODS]
    assert len(names) == len(set(names)) >= 40
    for name, build in METHODS:
        params = build(context)
        assert isinstance(params, list), name
        msgspec.json.encode(params)
    by_name = dict(METHODS)
    assert by_name["eth_getBalance"](context) == [context.address, "0x50"]
    assert by_name["eth_getBlockByHash"](context) == [context.block_hash, False]
    assert by_name["debug_traceTransaction"](context) == [
        context.tx_hash,
        {"tracer": "callTracer"},
    ]
