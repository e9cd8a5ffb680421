"""The pure consistency rules: the head floor and when an empty answer stands."""

from __future__ import annotations

import pytest

from lasso.core.block_target import block_target
from lasso.core.consistency import (
    HeadFloor,
    block_number_of,
    is_empty,
    needed_block,
    quantity,
)

TX = "0x" + "ab" * 32


def need(
    method: str,
    params: bytes,
    *,
    height: int | None,
    head: int | None = 100,
    floor: int | None = None,
    highest: int | None = 100,
) -> int | None:
    return needed_block(
        method,
        block_target(method, params),
        height=height,
        consensus_head=head,
        floor=floor,
        highest_known=highest,
    )


def test_quantities_and_block_numbers() -> None:
    assert quantity(b'"0x64"') == 100
    assert quantity(b' "0x0" ') == 0
    assert quantity(b'"64"') is None
    assert quantity(b"100") is None
    assert block_number_of(b'{"number":"0x65","hash":"0x1","transactions":[]}') == 101
    assert block_number_of(b"null") is None
    assert block_number_of(b'{"number":null}') is None  # a pending block on some nodes
    assert block_number_of(b"[1") is None


@pytest.mark.parametrize(
    ("method", "raw", "empty"),
    [
        ("eth_getBlockByNumber", b"null", True),
        ("eth_getTransactionReceipt", b" null\n", True),
        ("eth_getLogs", b"[]", True),
        ("eth_getLogs", b"[ ]", True),
        ("eth_getLogs", b'[{"a":1}]', False),
        ("eth_getBlockReceipts", b"[]", False),  # an empty block's receipts: a real answer
        ("eth_call", b"null", False),
        ("eth_getBlockByNumber", b'{"number":"0x1"}', False),
    ],
)
def test_what_counts_as_empty(method: str, raw: bytes, empty: bool) -> None:
    assert is_empty(method, raw) is empty


def test_by_number_a_provider_below_the_block_must_reach_it() -> None:
    assert need("eth_getBlockByNumber", b'["0x64",false]', height=98) == 100
    assert need("eth_getBlockReceipts", b'["0x64"]', height=None) == 100  # never seen


def test_by_number_a_provider_at_the_block_gives_a_genuine_null() -> None:
    # "nothing in the block" (an index past the end, no uncle) from a node at it stands
    by_index = b'["0x64","0x5"]'
    assert need("eth_getTransactionByBlockNumberAndIndex", by_index, height=100) is None
    assert need("eth_getUncleByBlockNumberAndIndex", by_index, height=120) is None
    # "no such block" stands only for a block past the consensus head and the floor,
    # known to exist only from one provider's report (it may be on its own fork)
    assert need("eth_getBlockByNumber", b'["0x65",false]', height=101, highest=101) is None


def test_no_such_block_for_a_block_that_exists_is_never_genuine() -> None:
    # The block is at or below the consensus head or the floor: a node recorded at it
    # (or above) that says it does not exist lost it (a restart from genesis).
    assert need("eth_getBlockByNumber", b'["0x64",false]', height=100) == 100
    assert need("eth_getBlockByNumber", b'["0x64",false]', height=120) == 100
    assert need("eth_getHeaderByNumber", b'["0x10"]', height=100) == 16
    assert need("eth_getBlockReceipts", b'["0x65"]', height=101, floor=101) == 101
    assert need("eth_getBlockTransactionCountByNumber", b'["0x1"]', height=100) == 1


def test_a_block_nobody_has_is_not_mined_yet() -> None:
    assert need("eth_getBlockByNumber", b'["0x65",false]', height=100) is None
    # ...unless the gateway already delivered it (newHeads): then some node has it.
    assert need("eth_getBlockByNumber", b'["0x65",false]', height=100, floor=101) == 101


def test_no_chain_state_judges_nothing() -> None:
    assert need("eth_getBlockByNumber", b'["0x64",false]', height=None, head=None) is None


def test_logs_need_the_highest_numbered_end() -> None:
    params = b'[{"fromBlock":"0x60","toBlock":"0x64"}]'
    assert need("eth_getLogs", params, height=99) == 100
    assert need("eth_getLogs", params, height=100) is None
    assert need("eth_getLogs", b'[{"fromBlock":"0x62","toBlock":"latest"}]', height=97) == 98
    assert need("eth_getLogs", b'[{"fromBlock":"latest"}]', height=90) is None  # its own head


def test_by_hash_a_provider_behind_the_head_or_floor_must_catch_up() -> None:
    receipt = b'["%s"]' % TX.encode()
    assert need("eth_getTransactionReceipt", receipt, height=99) == 100
    assert need("eth_getTransactionReceipt", receipt, height=100) is None
    assert need("eth_getTransactionReceipt", receipt, height=100, floor=101) == 101
    assert need("eth_getBlockByHash", b'["%s",false]' % TX.encode(), height=97) == 100
    assert need("eth_getTransactionByHash", receipt, height=None) == 100


def test_the_floor_only_goes_up() -> None:
    floor = HeadFloor()
    assert floor.block_number(b'"0x64"') == b'"0x64"'
    assert floor.block_number(b'"0x62"') == b'"0x64"'
    assert floor.block_number(b'"0x65"') == b'"0x65"'
    assert floor.value == 101
    assert floor.block_number(b'"junk"') == b'"junk"'  # not a quantity: not ours to judge
    assert floor.below(100) == 101
    assert floor.below(102) is None
    assert floor.value == 102
    floor.delivered({"number": "0xff", "hash": "0x1"})
    assert floor.value == 255
    floor.delivered({"number": "0x1"})
    floor.delivered("junk")
    assert floor.value == 255
    assert floor.block_number(b'"0xa"') == b'"0xff"'
