from __future__ import annotations

import pytest

from lasso.core.methods import (
    Allowlist,
    Disposition,
    deadline_ms,
    disposition,
    is_replay_safe,
    refusal,
)


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("eth_chainId", b"[]", Disposition.LOCAL_CHAIN_ID),
        ("eth_chainId", b"", Disposition.LOCAL_CHAIN_ID),
        ("eth_chainId", b"null", Disposition.LOCAL_CHAIN_ID),
        ("eth_chainId", b'["x"]', Disposition.FORWARD),
        ("eth_chainId", b"{}", Disposition.FORWARD),  # a node answers -32602: so must Lasso
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


@pytest.mark.parametrize(
    "method",
    [
        "anvil_setBalance",
        "anvil_reset",
        "hardhat_setBalance",
        "evm_mine",
        "evm_revert",
        "debug_setHead",
        "admin_addPeer",
        "miner_start",
        "personal_unlockAccount",
        "eth_sendUnsignedTransaction",
    ],
)
def test_node_admin_methods_are_denied_by_default(method: str) -> None:
    assert disposition(method, b"[]") is Disposition.DENIED
    exc = refusal(method, Disposition.DENIED, "/rpc/devnet")
    assert exc.code == -32601
    assert exc.message == f"the method {method} does not exist/is not available"
    assert exc.data is None


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("Anvil_reset", Disposition.DENIED),
        ("ANVIL_RESET", Disposition.DENIED),
        ("Admin_addPeer", Disposition.DENIED),
        ("debug_sethead", Disposition.DENIED),
        ("eth_SendTransaction", Disposition.BLOCKED),
        ("ETH_ACCOUNTS", Disposition.BLOCKED),
    ],
)
def test_case_variants_of_refused_methods_are_refused_too(
    method: str, expected: Disposition
) -> None:
    """A node that matches method names without regard to case must not be reachable
    through a case variant of a refused one."""
    assert disposition(method, b"[]") is expected


@pytest.mark.parametrize(
    "method",
    ["debug_traceTransaction", "debug_setHeadX", "eth_call", "anvil", "evm", "trace_block"],
)
def test_neighbours_of_the_denied_families_are_forwarded(method: str) -> None:
    assert disposition(method, b"[]") is Disposition.FORWARD


def test_the_allowlist_takes_exact_names_and_prefixes() -> None:
    allowed = Allowlist.parse(["evm_mine", "anvil_*"])
    assert disposition("evm_mine", b"[]", allowed) is Disposition.FORWARD
    assert disposition("anvil_setBalance", b"[]", allowed) is Disposition.FORWARD
    assert disposition("evm_revert", b"[]", allowed) is Disposition.DENIED
    assert disposition("hardhat_mine", b"[]", allowed) is Disposition.DENIED
    # Signing with the node's keys stays blocked whatever the allowlist says.
    assert disposition("personal_sign", b"[]", Allowlist.parse(["personal_*"])) is (
        Disposition.BLOCKED
    )


def test_an_allowed_state_changing_method_is_never_replayed() -> None:
    assert not is_replay_safe("debug_setHead")
    assert not is_replay_safe("anvil_setBalance")
    assert not is_replay_safe("evm_mine")
