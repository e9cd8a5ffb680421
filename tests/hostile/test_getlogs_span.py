"""A hostile ``eth_getLogs`` span: ``0x0`` to ``latest`` on a long chain whose provider
serves one block per call, with no global cap configured.

The split must keep to the request's deadline (every chunk counts from the request's
arrival, not from its own start), and must hold work in proportion to
``logs_chunk_concurrency``, not to the number of chunks: before, 100,000 chunks were
100,000 trio tasks started at once (+420 MB), fetched one after another for 56 s
past a 5 s deadline, while the other clients' calls waited up to 4 s.

Real front end (hypercorn on a loopback socket), a loopback fake node (h11) with a
head of 100,000 blocks.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from lasso.config import parse_settings
from tests.support.auth_node import open_auth_node
from tests.support.fakes import FakeNode
from tests.support.front import open_lasso

pytestmark = pytest.mark.slow

HEAD = 100_000
DEADLINE_MS = 1000


async def test_a_huge_split_keeps_its_deadline_and_hurts_no_other_call() -> None:
    async with open_auth_node("Basic dXNlcjpwYXNz", FakeNode(head=HEAD)) as node:
        settings = parse_settings(
            f"""
[routing]
method_deadlines_ms = {{ eth_getLogs = {DEADLINE_MS} }}
[chains.devnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 0
[[chains.devnet.providers]]
id = "n0"
url = "http://user:pass@127.0.0.1:{node.http_port}"
max_logs_block_range = 1
""",
            env={},
        )
        async with open_lasso(settings) as base, httpx.AsyncClient(timeout=30) as client:
            url = f"{base}/rpc/devnet"

            async def rpc(method: str, params: list[object]) -> httpx.Response:
                body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
                return await client.post(url, content=json.dumps(body))

            canary_worst = 0.0
            hostile_done = trio.Event()

            async def canary() -> None:
                nonlocal canary_worst
                while not hostile_done.is_set():
                    started = trio.current_time()
                    answer = (await rpc("eth_blockNumber", [])).json()
                    assert answer["result"] == hex(HEAD)
                    canary_worst = max(canary_worst, trio.current_time() - started)
                    await trio.sleep(0.02)

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(canary)
                    started = trio.current_time()
                    reply = await rpc("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])
                    took = trio.current_time() - started
                    hostile_done.set()

    assert reply.status_code == 200
    answer = reply.json()
    assert answer["id"] == 7
    assert "result" not in answer  # never a partial answer
    assert answer["error"]["code"] == -32000
    assert "deadline" in answer["error"]["message"]
    assert took < DEADLINE_MS / 1000 + 0.5
    assert canary_worst < 0.5
    # Work in flight stayed bounded: far fewer upstream calls than chunks.
    assert node.node.calls.count("eth_getLogs") < HEAD // 4
