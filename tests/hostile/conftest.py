"""The hostile-client suite's rig: the real front end before a real devnet, and a canary.

Every scenario runs :func:`lasso.daemon.serve` (hypercorn on a loopback socket)
in front of real anvil nodes, with a miner making a block every
``MINE_EVERY_S`` and a :class:`Canary` beside the attack: a well-behaved client
making HTTP calls and holding a ``newHeads`` subscription. Whatever the hostile
clients do, the canary must see no error and every head, in order, with no gap.

The [server] limits are set low (``SUITE_SERVER``) so each defence triggers in a
fraction of a second and the whole suite stays well under a minute.
"""

from __future__ import annotations

import json
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.config import Settings, parse_settings
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet

MINE_EVERY_S = 0.1

SUITE_SERVER = {
    "shutdown_grace_ms": 1000,
    "header_timeout_ms": 500,
    "body_timeout_ms": 1000,
    "ws_send_timeout_ms": 500,
    "ws_send_queue": 256,
    "ws_ping_interval_ms": 100,  # pings in flight while peers misbehave: the crash's trigger
    "max_connections": 200,
    "max_inflight_body_bytes": 4_000_000,
}


def suite_settings(devnet: Devnet, **server: Any) -> Settings:
    table = SUITE_SERVER | server
    lines = "\n".join(f"{key} = {value}" for key, value in table.items())
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    # The canary checks the front end, not upstream latency: on 2 shared cores under
    # attack an upstream call can take a while, and must not time out (and be cut) for it.
    text = (
        f"[server]\n{lines}\n[routing]\nmethod_deadlines_ms = {{ eth_blockNumber = 20000 }}\n"
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\n"
        f"providers = [\n{providers}\n]\n"
    )
    return parse_settings(text, env={})


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Canary:
    """A well-behaved client beside the attack: HTTP calls and a newHeads subscription."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http_ok = 0
        self.errors: list[str] = []
        self.heads: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self._head_seen = trio.Condition()
        self.stop_http = trio.Event()
        self.http_stopped = trio.Event()

    async def run_http(self) -> None:
        """Calls until told to stop; never cancelled mid-call (httpx dislikes that)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []})
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                await self._http_loop(client, body)
        finally:
            self.http_stopped.set()

    async def _http_loop(self, client: httpx.AsyncClient, body: str) -> None:
        while not self.stop_http.is_set():
            with trio.CancelScope(shield=True):
                try:
                    response = await client.post(f"{self.base}/rpc/devnet", content=body)
                    answer = response.json()
                    if response.status_code != 200 or "result" not in answer or answer["id"] != 7:
                        self.errors.append(f"http: {response.status_code} {answer}")
                    else:
                        self.http_ok += 1
                except (httpx.HTTPError, ValueError) as exc:
                    self.errors.append(f"http: {exc!r}")
            with trio.move_on_after(0.02):  # pacing, not waiting: a steady light load
                await self.stop_http.wait()

    async def run_ws(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        url = self.base.replace("http://", "ws://") + "/ws/rpc/devnet"
        subscribe = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
        try:
            async with open_websocket_url(url) as ws:
                await ws.send_message(json.dumps(subscribe))
                answer = json.loads(await ws.get_message())
                if "result" not in answer:
                    self.errors.append(f"ws subscribe: {answer}")
                task_status.started()
                while True:
                    message = json.loads(await ws.get_message())
                    await self._record(message)
        except Exception as exc:
            self.errors.append(f"ws: {exc!r}")
            raise

    async def _record(self, message: dict[str, Any]) -> None:
        if message.get("method") != "eth_subscription":
            self.errors.append(f"ws: unexpected {message}")
            return
        number = int(message["params"]["result"]["number"], 16)
        if self.heads and number != self.heads[-1] + 1:
            self.gaps.append((self.heads[-1], number))
        self.heads.append(number)
        async with self._head_seen:
            self._head_seen.notify_all()

    async def wait_for_head(self, number: int) -> None:
        async with self._head_seen:
            while not self.heads or self.heads[-1] < number:
                await self._head_seen.wait()


class Front:
    def __init__(self, devnet: Devnet, base: str, canary: Canary, shutdown: trio.Event) -> None:
        self.devnet = devnet
        self.base = base
        self.port = int(base.rsplit(":", 1)[1])
        self.canary = canary
        self.mining = True
        self.shutdown = shutdown
        self.stopped = trio.Event()
        self.clients: trio.CancelScope | None = None

    async def mine_forever(self) -> None:
        while self.mining:
            await self.devnet.mine()
            await trio.sleep(MINE_EVERY_S)  # block production, not a wait for a condition

    async def check_canary(self) -> None:
        """Stop mining, see the canary catch up to the last block; no error, no gap."""
        self.mining = False
        last = await self.devnet.mine()
        self.canary.stop_http.set()
        with trio.fail_after(10):
            await self.canary.wait_for_head(last)
            await self.canary.http_stopped.wait()
        assert self.canary.errors == [], self.canary.errors[:3]
        assert self.canary.gaps == []
        assert self.canary.http_ok > 0
        assert len(self.canary.heads) >= 2

    async def stop(self) -> float:
        """Check the canary, stop it, then shut the gateway down: seconds the shutdown took."""
        await self.check_canary()
        assert self.clients is not None
        self.clients.cancel()
        start = trio.current_time()
        self.shutdown.set()
        with trio.fail_after(30):
            await self.stopped.wait()
        return trio.current_time() - start


@asynccontextmanager
async def open_front(**server: Any) -> AsyncIterator[Front]:
    """The front end on a 2-node devnet, mined every MINE_EVERY_S, with a canary running."""
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        shutdown = trio.Event()
        stopped = trio.Event()

        async def run_gateway(task_status: trio.TaskStatus[list[str]]) -> None:
            try:
                await serve(
                    suite_settings(devnet, **server),
                    host="127.0.0.1",
                    port=0,
                    shutdown=shutdown,
                    task_status=task_status,
                )
            finally:
                stopped.set()

        async with trio.open_nursery() as nursery:
            binds = await nursery.start(run_gateway)
            canary = Canary(binds[0])
            front = Front(devnet, binds[0], canary, shutdown)
            front.stopped = stopped
            # The canary runs beside the test body, not around it: stopping it must
            # not cancel the test.
            front.clients = trio.CancelScope()

            async def run_clients(task_status: trio.TaskStatus[None]) -> None:
                assert front.clients is not None
                with front.clients:
                    async with trio.open_nursery() as clients:
                        await clients.start(canary.run_ws)
                        clients.start_soon(canary.run_http)
                        clients.start_soon(front.mine_forever)
                        task_status.started()

            await nursery.start(run_clients)
            try:
                yield front
            finally:
                front.clients.cancel()
                shutdown.set()


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    async with open_front() as rig:
        yield rig
