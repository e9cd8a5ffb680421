from __future__ import annotations

import pytest

from lasso.core.methods import Disposition, deadline_ms, disposition, is_replay_safe, refusal


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("eth_chainId", b"[]", Disposition.LOCAL_CHAIN_ID),
        ("eth_chainId", b'["x"]', Disposition.FORWARD),
        ("eth_sendTransaction", b"[]", Disposition.BLOCKED),
        ("eth_sign", b"[]", Disposition.BLOCKED),
        ("personal_sign", b"[]", Disposition.BLOCKED),
        ("eth_signTransaction", b"[]", Disposition.BLOCKED),
        ("eth_accounts", b"[]", Disposition.BLOCKED),
        ("eth_subscribe", b'["newHeads"]', Disposition.WS_ONLY),
        ("eth_unsubscribe", b'["0x1"]', Disposition.WS_ONLY),
        ("eth_sendRawTransaction", b'["0x"]', Disposition.FORWARD),
        ("vendor_custom", b"[]", Disposition.FORWARD),
    ],
)
def test_disposition(method: str, params: bytes, expected: Disposition) -> None:
    assert disposition(method, params) is expected


@pytest.mark.parametrize(
    ("method", "ms"),
    [
        ("eth_blockNumber", 1000),
        ("eth_chainId", 1000),
        ("eth_getBalance", 2000),
        ("eth_getTransactionReceipt", 3000),
        ("eth_call", 5000),
        ("eth_estimateGas", 5000),
        ("eth_getLogs", 5000),
        ("debug_traceTransaction", 30000),
        ("debug_traceBlockByNumber", 45000),
        ("vendor_custom", 10000),
    ],
)
def test_deadlines(method: str, ms: int) -> None:
    assert deadline_ms(method) == ms


def test_deadline_override() -> None:
    assert deadline_ms("eth_call", {"eth_call": 750}) == 750


@pytest.mark.parametrize(
    ("method", "safe"),
    [
        ("eth_blockNumber", True),
        ("eth_call", True),
        ("eth_getLogs", True),
        ("debug_traceTransaction", True),
        ("eth_sendRawTransaction", False),
        ("eth_newFilter", False),
        ("eth_getFilterChanges", False),
        ("vendor_custom", False),
    ],
)
def test_replay_safety(method: str, safe: bool) -> None:
    assert is_replay_safe(method) is safe


def test_subscription_refusal_points_to_websocket() -> None:
    exc = refusal("eth_subscribe", Disposition.WS_ONLY, "/rpc/devnet")
    assert exc.code == -32601
    assert exc.data == {"websocket_url": "/ws/rpc/devnet"}
