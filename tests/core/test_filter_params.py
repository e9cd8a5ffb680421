"""Filter method params, read as geth reads them."""

from __future__ import annotations

import pytest

from lasso.core.filter_params import FilterParamsError, parse_filter_id, parse_new_filter

ADDRESS = "0x" + "Ab" * 20
TOPIC = "0x" + "cd" * 32


def test_criteria_share_a_canonical_subscription_key() -> None:
    one = parse_new_filter(f'[{{"address":"{ADDRESS}","topics":["{TOPIC}",null]}}]'.encode())
    two = parse_new_filter(f'[{{"address":["{ADDRESS.lower()}"],"topics":[["{TOPIC}"]]}}]'.encode())
    assert one.request.key == two.request.key
    assert (one.first, one.last) == (None, None)


@pytest.mark.parametrize(
    ("crit", "span"),
    [
        ("{}", (None, None)),
        ('{"fromBlock":"latest","toBlock":"latest"}', (None, None)),
        ('{"fromBlock":"0x5"}', (5, None)),
        ('{"fromBlock":"0x5","toBlock":"0x9"}', (5, 9)),
        ('{"fromBlock":"earliest","toBlock":"0x9"}', (0, 9)),
        ('{"blockHash":"0x' + "11" * 32 + '"}', (None, None)),
    ],
)
def test_accepted_block_spans(crit: str, span: tuple[int | None, int | None]) -> None:
    criteria = parse_new_filter(f"[{crit}]".encode())
    assert (criteria.first, criteria.last) == span


@pytest.mark.parametrize(
    ("crit", "code", "message"),
    [
        ('{"fromBlock":"pending","toBlock":"pending"}', -32000, "pending logs are not supported"),
        ('{"fromBlock":"0x1","toBlock":"pending"}', -32000, "pending logs are not supported"),
        ('{"toBlock":"0x9"}', -32000, "invalid from and to block combination"),
        ('{"fromBlock":"0x9","toBlock":"0x5"}', -32000, "invalid from and to block combination"),
        ('{"fromBlock":"0xzz"}', -32602, "invalid block number"),
        ('{"fromBlock":"0x1","blockHash":"0x' + "11" * 32 + '"}', -32602, "BlockHash"),
        ('{"address":"0x12"}', -32602, "20-byte hex"),
        # geth refuses these when it decodes the criteria (hexutil, common.Hash)
        ('{"fromBlock":"0x' + "f" * 42 + '"}', -32602, "hex number > 64 bits"),
        ('{"toBlock":"0x' + "f" * 16 + '"}', -32602, "block number larger than int64"),
        ('{"blockHash":"0xzz"}', -32602, "blockHash must be a 32-byte hex"),
        ('{"blockHash":"0x' + "1" * 63 + '"}', -32602, "blockHash must be a 32-byte hex"),
        ('{"blockHash":7}', -32602, "blockHash must be a 32-byte hex"),
        ('"x"', -32602, "must be an object"),
    ],
)
def test_refused_criteria(crit: str, code: int, message: str) -> None:
    with pytest.raises(FilterParamsError, match=message) as caught:
        parse_new_filter(f"[{crit}]".encode())
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (b"[]", "missing value for required argument 0"),
        (b"", "missing value for required argument 0"),
        (b'["0x1","0x2"]', "too many arguments"),
        (b"[1]", "cannot unmarshal int"),
        (b"{}", "non-array args"),
    ],
)
def test_filter_ids(params: bytes, message: str) -> None:
    with pytest.raises(FilterParamsError, match=message):
        parse_filter_id(params)


def test_a_filter_id_is_read_case_insensitively() -> None:
    assert parse_filter_id(b'["0xABc"]') == "0xabc"
