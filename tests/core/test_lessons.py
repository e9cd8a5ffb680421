"""What a capability error teaches, and that pruned-state answers are CAPABILITY."""

from __future__ import annotations

import pytest

from lasso.core.block_target import BlockTarget, TargetKind, block_target
from lasso.core.classify import ErrorCategory, classify_rpc_error
from lasso.core.error_rules import Reason
from lasso.core.lessons import Lesson, LessonKind, lesson

#: Real answers of nodes asked for state they pruned or do not have yet.
NO_STATE_MESSAGES = (
    # anvil 1.x --prune-history, recorded from open_devnet(prune_history={2: 4}), code -32602
    "BlockOutOfRangeError: block height is 10 but requested was 1",
    "missing trie node 3c2f8b1a4d5e6f70 (path ) state 0x3c2f is not available",
    "header not found",
    "state not available",
    "state histories haven't been fully indexed yet",
    "historical state 0x6dba1e3c5c1f4b2a is not available",
    "required historical state unavailable (reexec=128)",
    "World state unavailable for block 0x5",
    "old data not available due to pruning",
    "state at block #5 is pruned",
)


@pytest.mark.parametrize("message", NO_STATE_MESSAGES)
@pytest.mark.parametrize("code", [-32000, -32602, -32603, -32001, -32002, -32099, -32010])
def test_no_state_answers_are_capability_never_a_breaker_failure(code: int, message: str) -> None:
    assert classify_rpc_error(code, message, None).category is ErrorCategory.CAPABILITY


def learn(
    reason: Reason,
    message: str,
    *,
    code: int = -32000,
    method: str = "eth_getBalance",
    transport: str = "http",
    target: BlockTarget | None = None,
    head: int | None = 1000,
    height: int | None = 1000,
) -> Lesson | None:
    return lesson(
        method=method,
        reason=reason,
        code=code,
        message=message,
        transport=transport,
        target=target or BlockTarget(TargetKind.NUMBER, number=100),
        head=head,
        provider_height=height,
        archival_threshold=128,
    )


UNSUPPORTED = Lesson(LessonKind.UNSUPPORTED)


def test_method_not_found_over_http_is_learned() -> None:
    assert learn(Reason.METHOD_NOT_FOUND, "Method not found", code=-32601) == UNSUPPORTED
    geth = "the method trace_block does not exist/is not available"
    assert learn(Reason.METHOD_NOT_FOUND, geth, code=-32601, method="trace_block") == UNSUPPORTED
    assert learn(Reason.UNSUPPORTED, "eth_getProof is not supported") == UNSUPPORTED
    assert learn(Reason.METHOD_NOT_FOUND, "Method not found", code=-32004) == UNSUPPORTED


def test_what_is_not_learned_as_unsupported() -> None:
    # anvil over WebSocket: one vague -32602 for any call it cannot match
    vague = "data did not match any variant of untagged enum EthRpcCall"
    assert learn(Reason.METHOD_NOT_FOUND, vague, code=-32602, transport="ws") is None
    assert learn(Reason.METHOD_NOT_FOUND, "Method not found", transport="ws") is None
    # words about this request, not the method
    assert learn(Reason.UNSUPPORTED, "Please specify an address in your request") is None
    assert learn(Reason.UNSUPPORTED, "pending block is not supported") is None
    assert learn(Reason.METHOD_NOT_FOUND, "account does not exist", code=-32000) is None


def test_pruned_state_is_learned_at_its_depth() -> None:
    anvil = "BlockOutOfRangeError: block height is 1000 but requested was 100"
    assert learn(Reason.BLOCK_NOT_AVAILABLE, anvil, code=-32602) == Lesson(LessonKind.PRUNED, 900)
    assert learn(Reason.HISTORY_UNAVAILABLE, "missing trie node ab") == Lesson(
        LessonKind.PRUNED, 900
    )
    earliest = BlockTarget(TargetKind.TAG, tag="earliest")
    assert learn(Reason.HISTORY_UNAVAILABLE, "pruned", target=earliest) == Lesson(
        LessonKind.PRUNED, 1000
    )
    logs = block_target("eth_getLogs", b'[{"fromBlock":"0x10","toBlock":"latest"}]')
    assert learn(Reason.HISTORY_UNAVAILABLE, "pruned", target=logs) == Lesson(
        LessonKind.PRUNED, 1000 - 16
    )
    # height unknown: learned only for an archival depth
    assert learn(Reason.HISTORY_UNAVAILABLE, "pruned", height=None) == Lesson(
        LessonKind.PRUNED, 900
    )
    recent = BlockTarget(TargetKind.NUMBER, number=990)
    assert learn(Reason.HISTORY_UNAVAILABLE, "pruned", height=None, target=recent) is None


def test_a_node_that_is_behind_is_not_pruned() -> None:
    ahead = BlockTarget(TargetKind.NUMBER, number=1000)
    # anvil says the same words for a block it has not reached
    anvil = "BlockOutOfRangeError: block height is 998 but requested was 1000"
    assert learn(Reason.BLOCK_NOT_AVAILABLE, anvil, target=ahead, height=998) is None
    assert learn(Reason.BLOCK_NOT_AVAILABLE, "header not found", target=ahead, height=998) is None
    assert learn(Reason.BLOCK_NOT_AVAILABLE, "header not found", head=None) is None
    latest = BlockTarget(TargetKind.TAG, tag="latest")
    assert learn(Reason.HISTORY_UNAVAILABLE, "missing trie node", target=latest) is None
    by_hash = block_target("eth_getBlockByHash", b'["0x' + b"ab" * 32 + b'"]')
    assert learn(Reason.BLOCK_NOT_AVAILABLE, "header not found", target=by_hash) is None
    assert learn(Reason.RANGE_TOO_LARGE, "block range too large") is None
