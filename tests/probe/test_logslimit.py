"""The fault proxy's eth_getLogs range limit: geth's refusal, for numeric ranges only."""

from __future__ import annotations

import msgspec

from lasso.chaos import LogsRangeLimit


def request(low: str, high: str, method: str = "eth_getLogs") -> bytes:
    params = [{"fromBlock": low, "toBlock": high, "address": "0x" + "00" * 20}]
    return msgspec.json.encode({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})


def test_a_range_wider_than_the_limit_gets_geths_refusal() -> None:
    limit = LogsRangeLimit(max_range=50)
    refusal = limit.refusal(request("0x0", "0x33"))  # to - from = 51
    assert msgspec.json.decode(refusal or b"null") == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32000, "message": "exceed maximum block range: 50"},
    }
    assert limit.refusal(request("0x0", "0x32")) is None  # to - from = 50: geth accepts


def test_an_inclusive_limit_counts_blocks() -> None:
    limit = LogsRangeLimit(max_range=50, inclusive=True, message="up to a {limit} block range")
    assert limit.refusal(request("0x1", "0x32")) is None  # 50 blocks
    assert b"up to a 50 block range" in (limit.refusal(request("0x1", "0x33")) or b"")


def test_tags_other_methods_and_junk_are_forwarded() -> None:
    limit = LogsRangeLimit(max_range=1)
    assert limit.refusal(request("0x0", "latest")) is None
    assert limit.refusal(request("earliest", "0x5")) is not None
    assert limit.refusal(request("0x0", "0x5", method="eth_call")) is None
    assert limit.refusal(b"not json") is None
    assert limit.refusal(b'[{"method":"eth_getLogs"}]') is None
