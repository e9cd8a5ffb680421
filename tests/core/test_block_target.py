"""Which block a request targets, over a table of real requests (valid and malformed),
then the routing helpers: head sensitivity, archival depth and the highest block needed.
"""

from __future__ import annotations

import pytest

from lasso.core.block_target import NO_BLOCK, UNKNOWN, BlockTarget, TargetKind, block_target

H = "0x" + "ab" * 32
H_UPPER = "0x" + "AB" * 32
ADDR = '"0x' + "11" * 20 + '"'
TX = '{"to":' + ADDR + ',"data":"0x70a08231"}'
SLOT = '"0x0"'


def tag(name: str) -> BlockTarget:
    return BlockTarget(TargetKind.TAG, tag=name)


def num(n: int) -> BlockTarget:
    return BlockTarget(TargetKind.NUMBER, number=n)


def rng(low: int | str, high: int | str) -> BlockTarget:
    return BlockTarget(TargetKind.RANGE, low=low, high=high)


def by_hash(h: str = H, canonical: bool = False) -> BlockTarget:
    return BlockTarget(TargetKind.HASH, block_hash=h, require_canonical=canonical)


ROWS: list[tuple[str, str, BlockTarget]] = [
    # methods naming no block
    ("eth_chainId", "[]", NO_BLOCK),
    ("eth_getTransactionByHash", f'["{H}"]', NO_BLOCK),
    ("eth_getTransactionReceipt", f'["{H}"]', NO_BLOCK),
    ("eth_sendRawTransaction", '["0x02f8"]', NO_BLOCK),
    ("eth_gasPrice", "garbage{", NO_BLOCK),  # no block param: the bytes are never read
    ("eth_blockNumber", "[]", tag("latest")),
    ("eth_blockNumber", "", tag("latest")),
    # block parameter at position 0
    ("eth_getBlockByNumber", '["latest",false]', tag("latest")),
    ("eth_getBlockByNumber", '["pending",true]', tag("pending")),
    ("eth_getBlockByNumber", '["safe",false]', tag("safe")),
    ("eth_getBlockByNumber", '["finalized",false]', tag("finalized")),
    ("eth_getBlockByNumber", '["earliest",false]', tag("earliest")),
    ("eth_getBlockByNumber", '["0x10d4f",false]', num(0x10D4F)),
    ("eth_getBlockByNumber", '["0x0",false]', num(0)),
    ("eth_getBlockByNumber", '["0x00ff",false]', num(255)),  # leading zeros, as anvil takes
    ("eth_getBlockByNumber", '[  "0xA" , false ]', num(10)),
    ("eth_getBlockByNumber", "[]", UNKNOWN),  # required
    ("eth_getBlockByNumber", "[null,false]", UNKNOWN),
    ("eth_getBlockByNumber", '["Latest",false]', UNKNOWN),
    ("eth_getBlockByNumber", '["0x",false]', UNKNOWN),
    ("eth_getBlockByNumber", '["0X10",false]', UNKNOWN),
    ("eth_getBlockByNumber", '["0x1_0",false]', UNKNOWN),  # int() would take it, geth does not
    ("eth_getBlockByNumber", '["16",false]', UNKNOWN),
    ("eth_getBlockByNumber", "[16,false]", UNKNOWN),
    ("eth_getBlockByNumber", '["0x8000000000000000",false]', UNKNOWN),  # > int64
    ("eth_getBlockByNumber", '["0x7fffffffffffffff",false]', num(2**63 - 1)),
    ("eth_getBlockByNumber", '{"block":"latest"}', UNKNOWN),  # params by name
    ("eth_getBlockByNumber", '["latest",false', UNKNOWN),  # truncated
    ("eth_getBlockByNumber", b"\xff\xfe".decode("latin-1"), UNKNOWN),
    ("eth_getBlockTransactionCountByNumber", '["0x1"]', num(1)),
    ("eth_getTransactionByBlockNumberAndIndex", '["0x2","0x0"]', num(2)),
    ("eth_getBlockReceipts", '["0x3"]', num(3)),
    ("eth_getBlockReceipts", f'["{H}"]', by_hash()),
    ("eth_getBlockReceipts", f'[{{"blockHash":"{H}"}}]', by_hash()),
    ("debug_traceBlockByNumber", '["0x4",{"tracer":"callTracer"}]', num(4)),
    ("trace_block", '["latest"]', tag("latest")),
    ("trace_replayBlockTransactions", '["0x5",["trace"]]', num(5)),
    # block parameter at position 1, default latest
    ("eth_getBalance", f'[{ADDR},"latest"]', tag("latest")),
    ("eth_getBalance", f"[{ADDR}]", tag("latest")),
    ("eth_getBalance", f"[{ADDR},null]", tag("latest")),
    ("eth_getBalance", f'[{ADDR},"0x64"]', num(100)),
    ("eth_getBalance", f'[{ADDR},{{"blockNumber":"0x64"}}]', num(100)),
    ("eth_getBalance", f'[{ADDR},{{"blockNumber":"earliest"}}]', tag("earliest")),
    ("eth_getBalance", f'[{ADDR},{{"blockHash":"{H}","requireCanonical":true}}]', by_hash(H, True)),
    ("eth_getBalance", f'[{ADDR},{{"blockHash":"{H_UPPER}"}}]', by_hash()),
    ("eth_getBalance", f'[{ADDR},{{"blockHash":"{H}","blockNumber":"0x1"}}]', UNKNOWN),
    ("eth_getBalance", f"[{ADDR},{{}}]", UNKNOWN),
    ("eth_getBalance", f'[{ADDR},{{"blockHash":"{H}","requireCanonical":"yes"}}]', UNKNOWN),
    ("eth_getBalance", f'[{ADDR},{{"blockHash":"0x1234"}}]', UNKNOWN),
    ("eth_getBalance", f'[{ADDR},"0x{"zz" * 32}"]', UNKNOWN),
    ("eth_getCode", f'[{ADDR},"pending"]', tag("pending")),
    ("eth_getTransactionCount", f'[{ADDR},"0x1b4"]', num(0x1B4)),
    ("eth_call", f"[{TX}]", tag("latest")),
    ("eth_call", f'[{TX},"0x12a05f200"]', num(0x12A05F200)),
    ("eth_call", f'[{TX},"latest",{{}}]', tag("latest")),  # state override set
    ("eth_call", f'[{TX},["latest"]]', UNKNOWN),
    ("eth_estimateGas", f"[{TX}]", tag("latest")),
    ("eth_createAccessList", f'[{TX},"finalized"]', tag("finalized")),
    ("debug_traceCall", f'[{TX},"0x9",{{"tracer":"prestateTracer"}}]', num(9)),
    ("eth_feeHistory", '["0x4","latest",[25,75]]', tag("latest")),
    ("eth_feeHistory", '["0x4"]', UNKNOWN),
    # block parameter at position 2
    ("eth_getStorageAt", f'[{ADDR},{SLOT},"0x1"]', num(1)),
    ("eth_getStorageAt", f"[{ADDR},{SLOT}]", tag("latest")),
    ("eth_getProof", f'[{ADDR},[{SLOT}],"earliest"]', tag("earliest")),
    ("trace_call", f'[{TX},["trace"],"0x2"]', num(2)),
    # block hashes
    ("eth_getBlockByHash", f'["{H}",false]', by_hash()),
    ("eth_getBlockByHash", f'["{H_UPPER}",true]', by_hash()),
    ("eth_getBlockByHash", '["0xabc",false]', UNKNOWN),
    ("eth_getBlockByHash", '["latest",false]', UNKNOWN),
    ("eth_getBlockByHash", "[]", UNKNOWN),
    ("eth_getBlockTransactionCountByHash", f'["{H}"]', by_hash()),
    ("eth_getTransactionByBlockHashAndIndex", f'["{H}","0x0"]', by_hash()),
    ("debug_traceBlockByHash", f'["{H}"]', by_hash()),
    # eth_getLogs / eth_newFilter
    ("eth_getLogs", '[{"fromBlock":"0x1","toBlock":"0x64"}]', rng(1, 100)),
    ("eth_getLogs", '[{"fromBlock":"0x1","toBlock":"latest"}]', rng(1, "latest")),
    ("eth_getLogs", '[{"fromBlock":"earliest"}]', rng("earliest", "latest")),
    ("eth_getLogs", '[{"address":"0x' + "22" * 20 + '"}]', rng("latest", "latest")),
    ("eth_getLogs", "[{}]", rng("latest", "latest")),
    ("eth_getLogs", '[{"fromBlock":null,"toBlock":"safe"}]', rng("latest", "safe")),
    ("eth_getLogs", f'[{{"blockHash":"{H}"}}]', by_hash()),
    ("eth_getLogs", f'[{{"blockHash":"{H}","fromBlock":"0x1"}}]', UNKNOWN),
    ("eth_getLogs", '[{"blockHash":"0x12"}]', UNKNOWN),
    ("eth_getLogs", '[{"fromBlock":1}]', UNKNOWN),
    ("eth_getLogs", '["latest"]', UNKNOWN),
    ("eth_getLogs", "[]", rng("latest", "latest")),
    ("eth_getLogs", "null", rng("latest", "latest")),
    ("eth_getLogs", "42", UNKNOWN),
    ("eth_newFilter", '[{"fromBlock":"0x10","toBlock":"0x20"}]', rng(16, 32)),
    ("eth_getLogs", "[" * 5000 + "]" * 5000, UNKNOWN),  # nesting past msgspec's limit
]


@pytest.mark.parametrize(("method", "params", "expected"), ROWS)
def test_block_target_table(method: str, params: str, expected: BlockTarget) -> None:
    assert block_target(method, params.encode("utf-8", "surrogateescape")) == expected


def test_table_is_large_and_covers_every_kind() -> None:
    assert len(ROWS) >= 40
    assert {row[2].kind for row in ROWS} == set(TargetKind)


def test_invalid_utf8_is_unknown() -> None:
    assert block_target("eth_getBlockByNumber", b'["\xff\xfe",false]') == UNKNOWN


HEAD = 1_000


@pytest.mark.parametrize(
    ("target", "head_sensitive"),
    [
        (tag("latest"), True),
        (tag("pending"), True),
        (tag("safe"), True),
        (tag("finalized"), True),
        (tag("earliest"), False),
        (num(5), False),
        (rng(1, "latest"), True),
        (rng("pending", 9), True),
        (rng(1, 9), False),
        (rng("earliest", 9), False),
        (by_hash(), False),
        (NO_BLOCK, False),
        (UNKNOWN, False),
    ],
)
def test_is_head_sensitive(target: BlockTarget, head_sensitive: bool) -> None:
    assert target.is_head_sensitive() is head_sensitive


def test_eth_block_number_and_calls_at_latest_are_head_sensitive() -> None:
    assert block_target("eth_blockNumber", b"[]").is_head_sensitive()
    assert block_target("eth_call", f"[{TX}]".encode()).is_head_sensitive()
    assert block_target("eth_estimateGas", f'[{TX},"latest"]'.encode()).is_head_sensitive()
    assert block_target("eth_getLogs", b'[{"fromBlock":"0x1"}]').is_head_sensitive()
    assert not block_target("eth_call", f'[{TX},"0x1"]'.encode()).is_head_sensitive()


@pytest.mark.parametrize(
    ("target", "archival"),
    [
        (tag("earliest"), True),
        (tag("latest"), False),
        (tag("finalized"), False),
        (num(HEAD - 128), False),  # exactly the threshold below: still recent
        (num(HEAD - 129), True),
        (num(0), True),
        (num(HEAD + 5), False),  # ahead of the consensus head
        (rng(HEAD - 200, "latest"), True),  # a range reaching back into history
        (rng(HEAD - 10, HEAD), False),
        (rng("earliest", "latest"), True),
        (by_hash(), False),  # height unknown from the request
        (NO_BLOCK, False),
        (UNKNOWN, False),
    ],
)
def test_is_archival(target: BlockTarget, archival: bool) -> None:
    assert target.is_archival(HEAD, 128) is archival


@pytest.mark.parametrize(
    ("target", "highest"),
    [
        (tag("latest"), HEAD),
        (tag("pending"), HEAD),
        (tag("earliest"), 0),
        (num(42), 42),
        (rng(3, 7), 7),
        (rng(3, "latest"), HEAD),
        (rng("earliest", 7), 7),
        (by_hash(), None),
        (NO_BLOCK, None),
        (UNKNOWN, None),
    ],
)
def test_highest_block(target: BlockTarget, highest: int | None) -> None:
    assert target.highest_block(HEAD) == highest
