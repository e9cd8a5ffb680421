"""The query of death (battle/README.md, open findings 1), with real anvil nodes.

``eth_feeHistory`` with a block count of 2**64 or more panics anvil: the process
exits. Sent once through Lasso to a 3-node devnet it used to crash all three nodes
(each crash a connection lost mid-request, the method replay-safe, so on to the
next). Now a request may lose at most two providers that way: the client gets a
clear -32000, the third node never sees it, a repeat is refused without reaching
any node (lasso.core.poison), and canary traffic is answered throughout: four
loops of ``eth_blockNumber`` and ``eth_getBalance`` back to back, so some are in
flight on the nodes as they die (bystanders, which must fail over and never be
quarantined). The devnet restarts the killed nodes by itself; its restart count
is the number of deaths.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from lasso.devnet import Devnet, open_devnet
from tests.support.front import devnet_settings, open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QOD = (
    b'{"jsonrpc":"2.0","id":1,"method":"eth_feeHistory",'
    b'"params":["0x400000000000000000","latest",[]]}'
)
CANARIES = (
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}',
    b'{"jsonrpc":"2.0","id":8,"method":"eth_getBalance",'
    b'"params":["0x70997970C51812dc3A010C7d01b50e0d17dc79C8","latest"]}',
)
CANARY_LOOPS = 4
JSON = {"content-type": "application/json"}
WHY = "the request lost the connection to 2 providers mid-request"
GUARD_S = 90.0


class Canary:
    """Reads through the gateway, back to back, until stopped: every answer must be a result."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.answered = 0
        self.errors: list[str] = []
        self.stop = trio.Event()
        self._asked = trio.Event()

    async def run(self, body: bytes) -> None:
        while not self.stop.is_set():
            response = await self.client.post("/rpc/devnet", content=body, headers=JSON)
            if response.status_code == 200 and "result" in response.json():
                self.answered += 1
            else:
                self.errors.append(f"HTTP {response.status_code} {response.text[:200]}")
            self._asked.set()
            self._asked = trio.Event()

    async def asked(self, more: int) -> None:
        """Until ``more`` further canary requests were answered (or failed)."""
        for _ in range(more):
            await self._asked.wait()


async def all_up(devnet: Devnet, restarts: int) -> tuple[int, ...]:
    """Wait until the nodes were restarted ``restarts`` times in all and are all up; the pids."""
    while True:
        stats = devnet.statistics()
        if sum(stats.restarts) >= restarts and all(h == "up" for h in stats.health):
            return stats.pids
        await trio.sleep(0.1)


def health_poisoned(health: dict[str, Any]) -> dict[str, int]:
    poisoned: dict[str, int] = health["chains"]["devnet"]["poisoned_requests"]
    return poisoned


async def send(client: httpx.AsyncClient, body: bytes) -> dict[str, Any]:
    response = await client.post("/rpc/devnet", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_query_of_death_kills_at_most_two_nodes_then_none() -> None:
    with trio.fail_after(GUARD_S):
        async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
            await devnet.mine()
            before = devnet.statistics()
            async with (
                open_lasso(devnet_settings(devnet)) as base,
                httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as client,
                trio.open_nursery() as nursery,
            ):
                canary = Canary(client)
                for loop in range(CANARY_LOOPS):
                    nursery.start_soon(canary.run, CANARIES[loop % 2])
                await canary.asked(8)
                first = await send(client, QOD)
                pids = await all_up(devnet, 2)  # the killed nodes are back
                deaths = sum(devnet.statistics().restarts) - sum(before.restarts)
                again = await send(client, QOD)
                pids_after_repeat = await all_up(devnet, 0)
                deaths_on_repeat = sum(devnet.statistics().restarts) - sum(before.restarts)
                deaths_on_repeat -= deaths
                health = (await client.get("/health")).json()
                await canary.asked(8)
                canary.stop.set()
    print(
        f"\nnodes died: {deaths} (first), {deaths_on_repeat} (repeat); "
        f"canary {canary.answered} ok, {len(canary.errors)} errors; "
        f"{health['chains']['devnet'].get('poisoned_requests')}"
    )
    assert first["id"] == 1 and first["error"]["code"] == -32000, first
    assert WHY in first["error"]["message"], first
    assert len({a["provider"] for a in first["error"]["data"]["attempts"]}) == 2, first
    assert deaths == 2, devnet.statistics()  # the third node never saw it
    assert again["id"] == 1 and again["error"]["code"] == -32000, again
    assert WHY in again["error"]["message"], again
    assert "attempts" not in again["error"]["data"]  # refused before any provider
    assert deaths_on_repeat == 0 and pids_after_repeat == pids
    poisoned = health_poisoned(health)
    assert (poisoned["stopped"], poisoned["refused"]) == (1, 1), poisoned
    assert canary.errors == [] and canary.answered >= 16
