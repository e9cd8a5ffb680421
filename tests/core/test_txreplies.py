"""What a node's refusal of eth_sendRawTransaction says about the transaction."""

from __future__ import annotations

import pytest

from lasso.core.txreplies import Refusal, refusal_of, strongest
from lasso.errors import UpstreamNetworkError, UpstreamRpcError


def rpc_error(message: str, code: int = -32000) -> UpstreamRpcError:
    return UpstreamRpcError(
        message, provider_id="p", rpc_code=code, raw_error=b"{}", category="deterministic"
    )


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        ("already known", Refusal.ALREADY_KNOWN),
        ("transaction already imported", Refusal.ALREADY_KNOWN),
        ("known transaction: 0xabc", Refusal.ALREADY_KNOWN),
        ("ALREADY_EXISTS: already known", Refusal.ALREADY_KNOWN),
        ("Transaction already in pool", Refusal.ALREADY_KNOWN),
        ("tx already in mempool", Refusal.ALREADY_KNOWN),
        ("AlreadyKnown", Refusal.ALREADY_KNOWN),
        ("nonce too low", Refusal.NONCE_TOO_LOW),
        ("nonce too low: next nonce 5, tx nonce 4", Refusal.NONCE_TOO_LOW),
        ("OldNonce", Refusal.NONCE_TOO_LOW),
        ("nonce too high", Refusal.OTHER),
        ("insufficient funds for gas * price + value", Refusal.OTHER),
        ("replacement transaction underpriced", Refusal.OTHER),
    ],
)
def test_refusal_of(message: str, refusal: Refusal) -> None:
    assert refusal_of(rpc_error(message)) is refusal


def test_only_a_nodes_error_is_a_refusal() -> None:
    assert refusal_of(UpstreamNetworkError("already known")) is Refusal.OTHER


def test_strongest_prefers_already_known_then_the_first_nonce_too_low() -> None:
    low1, low2, known = (
        rpc_error("nonce too low"),
        rpc_error("nonce too low"),
        rpc_error("already known"),
    )
    network = UpstreamNetworkError("reset")
    assert strongest([network, low1, known, low2]) == (Refusal.ALREADY_KNOWN, known)
    assert strongest([network, low1, low2]) == (Refusal.NONCE_TOO_LOW, low1)
    assert strongest([network]) == (Refusal.OTHER, None)
    assert strongest([]) == (Refusal.OTHER, None)
