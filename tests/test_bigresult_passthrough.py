"""A 5 MB eth_getLogs result reaches the client as the node's exact bytes: never decoded
into Python objects nor re-encoded (issue 13), through the real front end and the real
upstream HTTP transport.

The result is built so that any decode + encode would change it: whitespace inside and
between the logs, keys out of the usual order, a string with escapes msgspec would
write differently, numbers msgspec would print otherwise. If any step on the way
decoded the result (the reply check, the empty check, the logs policy, the cache) and
wrote it again, the bytes would differ.
"""

from __future__ import annotations

from functools import partial

import httpx
import msgspec
import pytest
import trio

from bench.bigresult_upstream import logs_result, serve
from lasso.config import parse_settings
from tests.support.front import open_lasso

LOG = (
    b'{ "removed" : false,\n\t"logIndex":"0x1" , "data" : "0x00", "escaped":"caf\\u00e9 \\/",'
    b' "numbers":[1.0E+2, 12345678901234567890123, -0.0], "address":"0x%040x" }'
)


def odd_result(size: int) -> bytes:
    logs = []
    total, index = 0, 0
    while total < size:
        logs.append(LOG % index)
        total += len(logs[-1]) + 3
        index += 1
    return b"[ " + b" ,\r\n ".join(logs) + b"\n]"


def test_the_odd_result_would_not_survive_a_decode_and_encode() -> None:
    result = odd_result(10_000)
    assert msgspec.json.encode(msgspec.json.decode(result)) != result
    assert msgspec.json.format(result, indent=0) != result


@pytest.mark.slow
@pytest.mark.parametrize("size", [5_000_000])
async def test_a_5mb_logs_result_reaches_the_client_byte_for_byte(
    nursery: trio.Nursery, size: int
) -> None:
    result = odd_result(size)
    port = await nursery.start(partial(serve, 0, result))
    settings = parse_settings(
        f'[chains.big]\nchain_id = 31337\nproviders = [ {{ id = "up", url = '
        f'"http://127.0.0.1:{port}/" }} ]\n',
        env={},
    )
    body = (
        b'{"jsonrpc":"2.0","id":"q-1","method":"eth_getLogs",'
        b'"params":[{"fromBlock":"0x1","toBlock":"0x2"}]}'
    )
    with trio.fail_after(20):
        async with open_lasso(settings) as base, httpx.AsyncClient() as client:
            for _ in range(2):  # the second may come from the response cache: the same bytes
                response = await client.post(
                    f"{base}/rpc/big", content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 200
                assert response.content == b'{"jsonrpc":"2.0","id":"q-1","result":' + result + b"}"


def test_the_bench_result_is_realistic_logs_of_the_size_asked() -> None:
    result = logs_result(200_000)
    logs = msgspec.json.decode(result)
    assert 190_000 <= len(result) <= 201_000
    assert {"address", "topics", "data", "blockNumber", "logIndex", "removed"} <= set(logs[0])
    assert msgspec.json.encode(logs) == result  # compact, as a node writes it
