"""The cache policy, as a table: what is kept, in which tier, and what never is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.cache_policy import ChainFacts, Keep, Tier, admit, classify

FACTS = ChainFacts(head=1000, finality_depth=64)  # final: 936
BLOCK = "0x" + "ab" * 32
TX = "0x" + "cd" * 32


def tier(method: str, params: str, facts: ChainFacts = FACTS) -> Tier | None:
    candidate = classify(method, params.encode(), facts)
    return None if candidate is None else candidate.tier


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("net_version", "[]", Tier.STATIC),
        ("eth_chainId", "[]", Tier.STATIC),
        ("eth_blockNumber", "[]", Tier.HEAD),
        ("eth_gasPrice", "[]", Tier.HEAD),
        ("eth_getBlockByNumber", '["latest", false]', Tier.HEAD),
        ("eth_getBlockByNumber", '["finalized", false]', Tier.HEAD),
        ("eth_getBlockByNumber", '["pending", false]', None),
        ("eth_getBlockByNumber", '["0x3a8", false]', Tier.IMMUTABLE),  # 936: final
        ("eth_getBlockByNumber", '["0x3a9", false]', None),  # 937: not yet final
        ("eth_getBlockByNumber", '["earliest", true]', Tier.IMMUTABLE),
        ("eth_getBlockByHash", f'["{BLOCK}", false]', Tier.IMMUTABLE),
        ("eth_getBlockReceipts", f'["{BLOCK}"]', Tier.IMMUTABLE),
        ("eth_getTransactionByBlockHashAndIndex", f'["{BLOCK}", "0x0"]', Tier.IMMUTABLE),
        ("eth_getTransactionByHash", f'["{TX}"]', Tier.IMMUTABLE),
        ("eth_getTransactionReceipt", f'["{TX}"]', Tier.IMMUTABLE),
        ("eth_getBalance", '["0x' + "11" * 20 + '", "0x10"]', Tier.IMMUTABLE),
        ("eth_getBalance", '["0x' + "11" * 20 + '"]', Tier.HEAD),  # default latest
        ("eth_getBalance", '["0x' + "11" * 20 + '", "pending"]', None),
        ("eth_call", f'[{{"to": "0x{"11" * 20}"}}, {{"blockHash": "{BLOCK}"}}]', Tier.IMMUTABLE),
        ("eth_getStorageAt", '["0x' + "11" * 20 + '", "0x0", "0x1"]', Tier.IMMUTABLE),
        ("eth_getLogs", '[{"fromBlock": "0x1", "toBlock": "0x3a8"}]', Tier.IMMUTABLE),
        ("eth_getLogs", '[{"fromBlock": "0x1", "toBlock": "0x3a9"}]', None),
        ("eth_getLogs", '[{"fromBlock": "0x1", "toBlock": "latest"}]', None),
        ("eth_getLogs", '[{"fromBlock": "0x10", "toBlock": "0x1"}]', None),  # inverted
        ("eth_getLogs", f'[{{"blockHash": "{BLOCK}"}}]', Tier.IMMUTABLE),
        ("eth_sendRawTransaction", '["0x00"]', None),
        ("eth_newFilter", "[{}]", None),
        ("eth_getFilterChanges", '["0x1"]', None),
        ("eth_subscribe", '["newHeads"]', None),
        ("web3_clientVersion", "[]", None),  # not known to the policy
        ("eth_getBlockByNumber", "[garbage", None),
    ],
)
def test_tier(method: str, params: str, expected: Tier | None) -> None:
    assert tier(method, params) is expected


def test_no_head_means_no_number_is_final() -> None:
    unknown = ChainFacts(head=None, finality_depth=64)
    assert tier("eth_getBlockByNumber", '["0x1", false]', unknown) is None
    assert tier("eth_getBlockByHash", f'["{BLOCK}", false]', unknown) is Tier.IMMUTABLE


def test_overrides() -> None:
    params = b'[{"fromBlock": "0x1", "toBlock": "0x2"}]'
    assert classify("eth_getLogs", params, FACTS, "never") is None
    assert classify("eth_getLogs", params, FACTS, "default") is not None
    ttl = classify("web3_clientVersion", b"[]", FACTS, "5000ms")
    assert ttl is not None and (ttl.tier, ttl.ttl_ms) == (Tier.TTL, 5000)
    # writes, filters and pending are never kept, whatever the override says
    assert classify("eth_sendRawTransaction", b'["0x00"]', FACTS, "5000ms") is None
    assert classify("eth_getBalance", b'["0x00", "pending"]', FACTS, "5000ms") is None


def candidate(method: str, params: str) -> object:
    found = classify(method, params.encode(), FACTS)
    assert found is not None
    return found


def test_null_and_pending_answers_are_never_kept() -> None:
    receipt = classify("eth_getTransactionReceipt", f'["{TX}"]'.encode(), FACTS)
    assert receipt is not None
    assert admit("eth_getTransactionReceipt", receipt, b"null") is None
    pending_tx = b'{"hash":"%b","blockHash":null,"blockNumber":null}' % TX.encode()
    tx = classify("eth_getTransactionByHash", f'["{TX}"]'.encode(), FACTS)
    assert tx is not None
    assert admit("eth_getTransactionByHash", tx, pending_tx) is None
    block = classify("eth_getBlockByHash", f'["{BLOCK}", false]'.encode(), FACTS)
    assert block is not None
    assert admit("eth_getBlockByHash", block, b"null") is None


def test_kept_answers_name_their_blocks() -> None:
    mined = b'{"transactionHash":"%b","blockHash":"%b","blockNumber":"0x3e7"}' % (
        TX.encode(),
        BLOCK.upper().replace("0X", "0x").encode(),
    )
    receipt = classify("eth_getTransactionReceipt", f'["{TX}"]'.encode(), FACTS)
    assert receipt is not None
    assert admit("eth_getTransactionReceipt", receipt, mined) == Keep(
        Tier.IMMUTABLE, low=999, high=999, hashes=(BLOCK,)
    )
    by_number = classify("eth_getBlockByNumber", b'["0x10", false]', FACTS)
    assert by_number is not None
    block = b'{"number":"0x10","hash":"%b","parentHash":"0x00"}' % BLOCK.encode()
    assert admit("eth_getBlockByNumber", by_number, block) == Keep(
        Tier.IMMUTABLE, low=16, high=16, hashes=(BLOCK,)
    )
    logs = classify("eth_getLogs", b'[{"fromBlock": "0x1", "toBlock": "0x20"}]', FACTS)
    assert logs is not None
    assert admit("eth_getLogs", logs, b"[]") == Keep(Tier.IMMUTABLE, low=1, high=32)


@given(head=st.integers(0, 10**9), depth=st.integers(0, 1000), number=st.integers(0, 10**9))
def test_a_number_is_kept_exactly_when_final(head: int, depth: int, number: int) -> None:
    facts = ChainFacts(head=head, finality_depth=depth)
    found = classify("eth_getBlockByNumber", f'["{hex(number)}", false]'.encode(), facts)
    assert (found is not None) == (number <= head - depth)


def test_latest_answers_are_kept_only_when_asked() -> None:
    assert classify("eth_blockNumber", b"[]", FACTS, latest=False) is None
    assert classify("eth_getBalance", b'["0x00"]', FACTS, latest=False) is None
    assert classify("eth_getBalance", b'["0x00", "0x1"]', FACTS, latest=False) is not None
    assert classify("eth_blockNumber", b"[]", FACTS, "1000ms", latest=False) is not None
