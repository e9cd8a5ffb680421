"""Reloads against the real lockstep devnet, through the real front end: removing and
re-adding the provider that serves the subscriptions gives every client every block
exactly once (failover with backfill), and under steady HTTP load and 50 WebSocket
clients on newHeads and logs, ten reloads cost no client an error, a gap or a duplicate;
unchanged providers keep their statistics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.devnet import Devnet, open_devnet
from lasso.reload import ReloadState
from tests.integration.test_subscriptions_devnet import heads, subscribe
from tests.support.emitter import TOPIC, deploy_emitter, emit
from tests.support.front import serve_reloadable, sighup_applied

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def settings_text(
    devnet: Devnet, *, without: str | None = None, threshold: int = 5, grace_ms: int = 2000
) -> str:
    rows = [
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", '
        f"priority = {n.index} }}"
        for n in devnet.nodes
        if f"n{n.index}" != without
    ]
    return (
        f"[server]\nshutdown_grace_ms = {grace_ms}\n"
        f"[circuit_breaker]\nfailure_threshold = {threshold}\n"
        "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n"
        + ",\n".join(rows)
        + "\n]\n"
    )


class Rig:
    def __init__(
        self,
        devnet: Devnet,
        path: Path,
        state: ReloadState,
        send: trio.MemorySendChannel[object],
        base: str,
    ) -> None:
        self.devnet, self.path, self.state, self._send = devnet, path, state, send
        self.http = base
        self.ws = base.replace("http://", "ws://")

    async def reload(self, text: str) -> None:
        """Write the file, "SIGHUP", and wait until the new generation is applied."""
        self.path.write_text(text)
        await sighup_applied(self.state, self._send)


@asynccontextmanager
async def reload_rig(tmp_path: Path, grace_ms: int = 2000) -> AsyncIterator[Rig]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        path = tmp_path / "lasso.toml"
        path.write_text(settings_text(devnet, grace_ms=grace_ms))
        async with serve_reloadable(path, buffer=16) as front:
            yield Rig(devnet, path, front.state, front.send, front.bind)


async def upstream_serving(rig: Rig) -> set[str]:
    """The providers serving upstream subscriptions, from /metrics."""
    async with httpx.AsyncClient(trust_env=False) as client:
        text = (await client.get(f"{rig.http}/metrics")).text
    return {
        line.split('provider="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("lasso_upstream_subscriptions{") and float(line.rsplit(" ", 1)[1])
    }


async def test_removing_and_re_adding_the_serving_provider_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    async with reload_rig(tmp_path) as rig:
        devnet = rig.devnet
        with trio.fail_after(40):
            async with (
                open_websocket_url(f"{rig.ws}/ws/rpc/devnet") as client,
                open_websocket_url(devnet.nodes[2].ws_url) as reference,
            ):
                await subscribe(client, ["newHeads"])
                await subscribe(reference, ["newHeads"])
                assert await upstream_serving(rig) == {"n0"}
                received: list[dict[str, Any]] = []
                for text in (
                    settings_text(devnet, without="n0"),  # the serving provider goes
                    settings_text(devnet),  # and comes back
                    settings_text(devnet, without="n1"),  # the one serving since goes
                ):
                    for _ in range(2):
                        await devnet.mine()
                    received += await heads(client, 2)
                    await rig.reload(text)
                    await devnet.mine()  # a block while the stream fails over
                    received += await heads(client, 1)
                expected = await heads(reference, 9)
    numbers = [int(h["number"], 16) for h in received]
    assert numbers == list(range(2, 11))  # 0 gaps
    assert len({h["hash"] for h in received}) == 9  # 0 duplicates
    assert received == expected


async def test_the_old_connection_of_a_re_added_provider_closing_moves_no_stream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """n0 removed, re-added (a new object), then serving again; when the old n0's drain
    ends, its connection closes: the stream on the new n0 must not fail over for it."""
    caplog.set_level(logging.INFO)
    grace_ms = 300
    async with reload_rig(tmp_path, grace_ms=grace_ms) as rig:
        devnet = rig.devnet
        texts = [
            settings_text(devnet, without="n0", grace_ms=grace_ms),
            settings_text(devnet, grace_ms=grace_ms),
            settings_text(devnet, without="n1", grace_ms=grace_ms),
        ]
        with trio.fail_after(30):
            async with open_websocket_url(f"{rig.ws}/ws/rpc/devnet") as client:
                await subscribe(client, ["newHeads"])
                received: list[dict[str, Any]] = []
                for text in texts:
                    await rig.reload(text)
                    await devnet.mine()
                    received += await heads(client, 1)
                while True:  # the old n0's drain ends, and its connection closes
                    if "provider n0 stopped after its drain" in caplog.text:
                        break
                    await trio.sleep(0.01)
                for _ in range(2):
                    await devnet.mine()
                    received += await heads(client, 1)
                assert await upstream_serving(rig) == {"n0"}
    failovers = [r for r in caplog.records if "failing over" in r.getMessage()]
    assert len(failovers) == 2, [r.getMessage() for r in failovers]  # n0, then n1: no third
    numbers = [int(h["number"], 16) for h in received]
    assert numbers == list(range(2, 7))


CLIENTS = 50
RELOADS = 10


async def test_reload_under_load(tmp_path: Path) -> None:
    """Steady HTTP load, 25 clients on newHeads and 25 on logs, 10 reloads alternately
    removing and re-adding the serving provider, each with a new breaker threshold."""
    async with reload_rig(tmp_path) as rig:
        devnet = rig.devnet
        contract = await deploy_emitter(devnet)
        log_filter = {"address": contract, "topics": [[TOPIC]]}
        first_block = int(await devnet.request(0, "eth_blockNumber"), 16) + 1
        stop_load = trio.Event()
        errors: list[str] = []
        http_answers = [0]
        streams: dict[int, list[dict[str, Any]]] = {}
        subscribed = trio.Semaphore(0)
        done = trio.Event()
        blocks = 1 + RELOADS  # one emitting block before the reloads and one after each

        async def http_load() -> None:
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
            async with httpx.AsyncClient(base_url=rig.http, trust_env=False) as client:
                while not stop_load.is_set():
                    answer = (await client.post("/rpc/devnet", json=body)).json()
                    if "result" not in answer:
                        errors.append(f"http: {answer}")
                    http_answers[0] += 1

        async def ws_client(index: int) -> None:
            kind: list[Any] = ["newHeads"] if index % 2 == 0 else ["logs", log_filter]
            async with open_websocket_url(f"{rig.ws}/ws/rpc/devnet") as ws:
                await subscribe(ws, kind)
                subscribed.release()
                streams[index] = await collect(ws, blocks)
            if len(streams) == CLIENTS:
                done.set()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                statistics_before = None
                for _ in range(3):
                    nursery.start_soon(http_load)
                for index in range(CLIENTS):
                    nursery.start_soon(ws_client, index)
                for _ in range(CLIENTS):
                    await subscribed.acquire()
                await emit(devnet, contract)
                for reload in range(RELOADS):
                    gone = ("n0", "n1")[(reload // 2) % 2] if reload % 2 == 0 else None
                    text = settings_text(devnet, without=gone, threshold=5 + reload)
                    if reload == 0:
                        statistics_before = await provider_statistics(rig, "n2")
                    if gone is not None:  # it is the one serving the subscriptions
                        assert gone in await upstream_serving(rig)
                    await rig.reload(text)
                    while gone is not None:  # every stream failed over (bounded above)
                        if gone not in await upstream_serving(rig):
                            break
                        await trio.sleep(0.01)
                    await emit(devnet, contract)
                await done.wait()
                stop_load.set()
                statistics_after = await provider_statistics(rig, "n2")
    assert errors == []
    for index, received in streams.items():
        if index % 2 == 0:
            numbers = [int(h["number"], 16) for h in received]
        else:
            numbers = [int(log["blockNumber"], 16) for log in received]
        assert numbers == list(range(first_block, first_block + blocks)), index
    assert rig.state.generation == 1 + RELOADS
    assert statistics_before is not None and statistics_after is not None
    # n2 was never touched: its breaker, transport and supervisor carried over
    assert statistics_after["supervisor"]["restarts"] == statistics_before["supervisor"]["restarts"]
    assert (
        statistics_after["http"]["transport"]["requests"]
        >= statistics_before["http"]["transport"]["requests"]
    )
    before_ws, after_ws = statistics_before["ws"]["transport"], statistics_after["ws"]["transport"]
    assert after_ws["connection_id"] == before_ws["connection_id"]  # the same WebSocket
    assert after_ws["connects"] == before_ws["connects"] == 1
    print(
        f"reload under load: {RELOADS} reloads, {CLIENTS} WS clients x {blocks} blocks, "
        f"{http_answers[0]} HTTP answers, {len(errors)} errors"
    )


async def collect(ws: WebSocketConnection, count: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        message = json.loads(await ws.get_message())
        assert message.get("method") == "eth_subscription", message
        out.append(message["params"]["result"])
    return out


async def provider_statistics(rig: Rig, provider: str) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False) as client:
        health = (await client.get(f"{rig.http}/health")).json()
    (stats,) = [p for p in health["chains"]["devnet"]["providers"] if p["id"] == provider]
    return dict(stats)
