"""A chain reset under live subscriptions, with real anvil nodes killed and restarted empty.

Every node is killed and started again on the same port with an empty chain (the head
goes back to 0, new blocks get new hashes). A newHeads subscriber must not sit silent:
it gets an error notification once the stale window shows no provider at or above the
head it was last sent (its head never goes backwards), and a new subscriber gets the new
chain's heads live.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.config import parse_settings
from lasso.daemon import serve
from lasso.devnet.anvil import HOST, AnvilLaunch, find_anvil, pick_free_ports, run_anvil
from lasso.devnet.control import ControlClient, open_http_client
from lasso.devnet.guardian import Guardian, open_guardian

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GENESIS = 1_700_000_000
STALE_S = 2.0  # min_stale_ms below; stale_after_blocks * block time is shorter


class Nodes:
    """Two anvil nodes that can be killed and restarted empty on their own ports."""

    def __init__(self, nursery: trio.Nursery, control: ControlClient, guardian: Guardian) -> None:
        self.nursery, self.control, self.guardian = nursery, control, guardian
        self.ports = pick_free_ports(2)
        self.scopes: list[trio.CancelScope] = []
        self.anvil = find_anvil()

    async def start(self) -> None:
        self.scopes = []
        for index, port in enumerate(self.ports):
            launch = AnvilLaunch(index, port, True, 31337, GENESIS, None)
            await self.nursery.start(self._run, launch)

    async def _run(self, launch: AnvilLaunch, *, task_status: trio.TaskStatus[Any]) -> None:
        with trio.CancelScope() as scope:
            self.scopes.append(scope)
            await run_anvil(
                self.anvil, launch, self.control, self.guardian, task_status=task_status
            )

    def kill(self) -> None:
        for scope in self.scopes:
            scope.cancel()

    async def mine(self, timestamp: int) -> None:
        """One identical block on every node (same parent, same timestamp, no txs)."""
        for port in self.ports:
            await self.control.call(f"http://{HOST}:{port}", "evm_mine", [timestamp])


@pytest.fixture
async def rig(nursery: trio.Nursery) -> AsyncIterator[tuple[Nodes, str]]:
    async with open_http_client() as http, open_guardian() as guardian:
        nodes = Nodes(nursery, ControlClient(http), guardian)
        await nodes.start()
        rows = ",\n".join(
            f'{{ id = "n{i}", url = "http://{HOST}:{p}", ws_url = "ws://{HOST}:{p}", '
            f"priority = {i} }}"
            for i, p in enumerate(nodes.ports)
        )
        text = (
            "[websocket]\nping_interval_ms = 200\npong_timeout_ms = 300\n"
            f"[subscriptions]\nmin_stale_ms = {int(STALE_S * 1000)}\nstale_after_blocks = 1\n"
            "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 500\nproviders = [\n"
            + rows
            + "\n]\n"
        )
        shutdown = trio.Event()
        binds = await nursery.start(
            partial(
                serve, parse_settings(text, env={}), host="127.0.0.1", port=0, shutdown=shutdown
            )
        )
        yield nodes, binds[0].replace("http://", "ws://")
        shutdown.set()
        nodes.kill()


async def subscribe(ws: WebSocketConnection, rid: int) -> str:
    request = {"jsonrpc": "2.0", "id": rid, "method": "eth_subscribe", "params": ["newHeads"]}
    await ws.send_message(json.dumps(request))
    answer = json.loads(await ws.get_message())
    assert "result" in answer, answer
    return str(answer["result"])


async def message(ws: WebSocketConnection) -> dict[str, Any]:
    got = json.loads(await ws.get_message())
    assert got.get("method") == "eth_subscription", got
    return dict(got["params"])


async def test_a_reset_chain_ends_subscriptions_with_an_error_then_serves_live_heads(
    rig: tuple[Nodes, str],
) -> None:
    nodes, base = rig
    for k in range(1, 101):  # the new chain stays far below the old head meanwhile
        await nodes.mine(GENESIS + k)
    with trio.fail_after(60):
        async with open_websocket_url(f"{base}/ws/rpc/devnet") as client:
            sub_id = await subscribe(client, 1)
            for k in range(101, 104):
                await nodes.mine(GENESIS + k)
            before = [int((await message(client))["result"]["number"], 16) for _ in range(3)]
            assert before == [101, 102, 103]
            last_delivered = trio.current_time()
            nodes.kill()  # every node dies...
            await trio.sleep(0.5)
            await nodes.start()  # ...and comes back empty, at block 0
            restarted = trio.current_time()

            async def mine_new_chain() -> None:
                for number in range(1, 400):  # other timestamps: other blocks, other hashes
                    await nodes.mine(GENESIS + 5_000 + number)
                    await trio.sleep(0.25)

            async with trio.open_nursery() as miners:
                miners.start_soon(mine_new_chain)
                with trio.fail_after(20):  # before: silence (600+ s in the report)
                    error = await message(client)
                print(
                    f"error {trio.current_time() - restarted:.2f} s after the restart, "
                    f"{trio.current_time() - last_delivered:.2f} s after the last head"
                )
                assert "result" not in error, error  # never a head from the new chain
                assert error["subscription"] == sub_id
                assert error["error"]["code"] == -32000
                assert "behind the last delivered head 103" in error["error"]["message"]
                assert trio.current_time() - last_delivered < STALE_S + 3
                fresh_id = await subscribe(client, 2)  # a new subscriber: live heads
                first = await message(client)
                second = await message(client)
                miners.cancel_scope.cancel()
    assert first["subscription"] == second["subscription"] == fresh_id
    assert int(first["result"]["number"], 16) < 100  # the new chain's own numbers
    assert second["result"]["parentHash"] == first["result"]["hash"]
