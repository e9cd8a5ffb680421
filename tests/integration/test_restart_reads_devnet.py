"""Read-your-head across a node restart, through the real front end with real anvil.

The first provider in line is SIGKILLed; the devnet restarts it from genesis and
replays it up to the head. Until it reports again, the gateway's record still has
it at the old head, so a read of a block every client was told about went to it
and its "no such block" (``null``) was returned. The block exists: such a null is
never an answer (lasso.core.consistency), and the read goes to a node that has it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.devnet import Devnet, open_devnet
from lasso.devnet.errors import DevnetError
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BLOCKS = 40  # a long replay: the restarted node is behind for a while
READS = 20


def priority_settings(devnet: Devnet) -> str:
    """Every node a provider (HTTP and WS), ``n0`` first in line."""
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    return (
        "[websocket]\nreconnect_base_ms = 2000\n"  # the WebSocket path does not learn first
        '[routing]\ndefault_strategy = "priority"\n'
        "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\n"
        f"providers = [\n{providers}\n]\n"
    )


async def poll_until(condition: Callable[[], Awaitable[bool]], every_s: float) -> None:
    """Poll ``condition`` (the caller bounds it with a deadline)."""
    while True:
        if await condition():
            return
        await trio.sleep(every_s)


async def heights(client: httpx.AsyncClient, base: str) -> list[int | None]:
    report = (await client.get(f"{base}/health")).json()
    return [p["height"] for p in report["chains"]["devnet"]["providers"]]


async def answers_below(devnet: Devnet, height: int) -> bool:
    """Whether node 0 answers, below ``height``: the restarted process, not yet caught up."""
    try:
        return int(await devnet.request(0, "eth_blockNumber"), 16) < height
    except (OSError, DevnetError):
        return False


async def test_reads_of_existing_blocks_right_after_a_restart_are_never_null() -> None:
    async with (
        open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet,
        open_lasso(parse_settings(priority_settings(devnet), env={})) as base,
        httpx.AsyncClient(timeout=10) as client,
    ):
        url = f"{base}/rpc/devnet"

        async def rpc(method: str, params: list[object]) -> object:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            response = await client.post(url, content=json.dumps(body))
            answer = response.json()
            assert "result" in answer, answer
            return answer["result"]

        with trio.fail_after(60):
            for _ in range(BLOCKS):
                await devnet.mine()

            async def told_and_known() -> bool:  # a client was told BLOCKS; every node reported it
                told = await rpc("eth_blockNumber", []) == hex(BLOCKS)
                return told and await heights(client, base) == [BLOCKS] * 3

            await poll_until(told_and_known, 0.05)
            devnet.kill(0)
            await poll_until(partial(answers_below, devnet, BLOCKS), 0.005)  # back, replaying
            nulls = 0
            for i in range(READS):
                block = await rpc("eth_getBlockByNumber", [hex(BLOCKS - i % 3), False])
                nulls += block is None
    print(f"{nulls} of {READS} reads of existing blocks were null")
    assert nulls == 0
