"""Hostile and malformed requests through the real front end, against real anvil nodes.

Differential where a node is the reference: the same bytes go to a devnet node
directly and through Lasso, and the answers must agree.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.chaos import FaultProxy
from lasso.config import parse_settings
from lasso.devnet import Devnet, open_devnet
from tests.support.front import open_lasso
from tests.support.proxied import open_fault_proxies

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JSON = {"content-type": "application/json"}
ZERO_ADDRESS = "0x" + "00" * 20


def settings_toml(devnet: Devnet, server: str = "") -> str:
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", priority = {n.index} }}'
        for n in devnet.nodes
    )
    return (
        f"[server]\nshutdown_grace_ms = 200\n{server}\n"
        f"[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n{providers}\n]\n"
    )


@dataclass
class Stack:
    devnet: Devnet
    client: httpx.AsyncClient

    @property
    def node_url(self) -> str:
        return self.devnet.nodes[0].http_url

    async def health(self) -> dict[str, Any]:
        response = await self.client.get("/health")
        return msgspec.json.decode(response.content)  # type: ignore[no-any-return]

    async def circuits(self) -> list[str]:
        chain = (await self.health())["chains"]["devnet"]
        return [
            provider[t]["circuit"]
            for provider in chain["providers"]
            for t in ("http", "ws")
            if provider.get(t)
        ]

    async def wait_ws_connected(self) -> None:
        with trio.fail_after(10):
            while True:
                chain = (await self.health())["chains"]["devnet"]
                if all(p["ws"] and p["ws"]["connected"] for p in chain["providers"]):
                    return
                await trio.sleep(0.02)


@asynccontextmanager
async def open_stack(devnet: Devnet, server: str = "") -> AsyncIterator[Stack]:
    settings = parse_settings(settings_toml(devnet, server), env={})
    async with (
        open_lasso(settings) as base,
        httpx.AsyncClient(base_url=base, trust_env=False, timeout=None) as client,
    ):
        stack = Stack(devnet, client)
        await stack.wait_ws_connected()
        yield stack


@pytest.fixture
async def devnet() -> AsyncIterator[Devnet]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as net:
        for _ in range(3):
            await net.mine()
        yield net


def nested(depth: int, rid: int) -> bytes:
    """A small eth_blockNumber whose params nest ``depth`` arrays deep."""
    params = b"[" * depth + b"]" * depth
    return b'{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber","params":%b}' % (rid, params)


# --- item 2: a client cannot open the breakers ------------------------------------


@pytest.mark.parametrize("max_json_depth", [None, 512])
async def test_a_burst_of_deep_requests_opens_no_breaker(
    devnet: Devnet, max_json_depth: int | None
) -> None:
    server = "" if max_json_depth is None else f"max_json_depth = {max_json_depth}"
    async with open_stack(devnet, server) as stack:
        answers: dict[int, httpx.Response] = {}

        async def send(rid: int) -> None:
            answers[rid] = await stack.client.post("/rpc/devnet", content=nested(200, rid))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for rid in range(30):
                    nursery.start_soon(send, rid)
            node = await stack.client.post(stack.node_url, content=nested(200, 99), headers=JSON)
            circuits = await stack.circuits()
            after = await stack.client.post(
                "/rpc/devnet",
                content=b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
            )
        assert circuits == ["closed"] * 6
        assert after.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x3"}
        node_error = node.json()["error"]
        for rid, response in answers.items():
            answer = response.json()
            assert answer["id"] == rid
            assert answer["error"]["code"] == -32600
            if max_json_depth == 512:  # forwarded: the node's own answer comes back
                assert answer["error"] == node_error
            else:  # refused here, before it leaves Lasso
                assert "nested" in answer["error"]["message"]


async def test_a_burst_of_deep_frames_on_one_websocket_opens_no_breaker(devnet: Devnet) -> None:
    # Forwarded to the nodes (512 allowed): over the upstream WebSocket their null-id
    # answers cannot be matched by id, and still no provider is blamed.
    async with open_stack(devnet, "max_json_depth = 512") as stack:
        lasso_ws = str(stack.client.base_url).replace("http", "ws", 1) + "/ws/rpc/devnet"
        with trio.fail_after(20):
            async with open_websocket_url(lasso_ws) as ws:
                for rid in range(30):
                    await ws.send_message(nested(200, rid).decode())
                answers = [msgspec.json.decode(await ws.get_message()) for _ in range(30)]
            circuits = await stack.circuits()
    assert circuits == ["closed"] * 6
    assert sorted(a["id"] for a in answers) == list(range(30))
    assert {a["error"]["code"] for a in answers} == {-32600}


# --- item 13: a readable id is kept; the node's own answer is the reference -------------

ID_READABLE = [
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":"x"}',
    b'{"jsonrpc":"2.0","id":"s","method":"eth_blockNumber","params":5}',
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":true}',
    b'{"jsonrpc":"1.0","id":7,"method":"eth_blockNumber","params":[]}',
    b'{"id":7,"method":"eth_blockNumber","params":[]}',
    b'{"jsonrpc":"2.0","id":7,"method":5,"params":[]}',
    b'{"jsonrpc":"2.0","id":7,"params":[]}',
    b'[{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":"x"},'
    b'{"jsonrpc":"2.0","id":8,"method":"eth_blockNumber","params":[]}]',
]
#: Bodies a node answers as if they were fine: Lasso must too, byte for byte.
NODE_ACCEPTS = [
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":null}',
]


def id_and_codes(answer: Any) -> Any:
    """What must agree with the node: ids and codes (the messages are Lasso's own words)."""
    if isinstance(answer, list):
        return [id_and_codes(a) for a in answer]
    return (answer["id"], answer["error"]["code"] if "error" in answer else answer["result"])


async def test_invalid_requests_keep_the_id_as_the_node_does(devnet: Devnet) -> None:
    async with open_stack(devnet) as stack:
        lasso_ws = str(stack.client.base_url).replace("http", "ws", 1) + "/ws/rpc/devnet"
        with trio.fail_after(20):
            async with (
                open_websocket_url(devnet.nodes[0].ws_url) as node_ws,
                open_websocket_url(lasso_ws) as via_ws,
            ):
                for body in ID_READABLE + NODE_ACCEPTS:
                    node = await stack.client.post(stack.node_url, content=body, headers=JSON)
                    http = await stack.client.post("/rpc/devnet", content=body)
                    await node_ws.send_message(body.decode())
                    await via_ws.send_message(body.decode())
                    node_ws_answer = msgspec.json.decode(await node_ws.get_message())
                    ws_answer = msgspec.json.decode(await via_ws.get_message())
                    reference = id_and_codes(node.json())
                    assert id_and_codes(node_ws_answer) == reference, body
                    assert id_and_codes(http.json()) == reference, body
                    assert id_and_codes(ws_answer) == reference, body
                    if body in NODE_ACCEPTS:
                        assert http.content == node.content


async def test_hostile_bytes_get_a_jsonrpc_error_with_the_readable_id(
    devnet: Devnet, caplog: pytest.LogCaptureFixture
) -> None:
    # (body, code, id): the id is read by the decoder, or where clients put it when the
    # nesting is beyond the decoder's reach; not at all when it is buried.
    buried = b'{"jsonrpc":"2.0","method":"m","params":[%b,{"id":7}]}' % (b"[" * 5000 + b"]" * 5000)
    cases = [
        (b'{"jsonrpc":"2.0","id":7,"method":"eth_\xff","params":[]}', -32700, 7),
        (b'{"jsonrpc":"2.0","id":7,"method":"eth_getBalance","params":["\xff"]}', -32700, 7),
        (nested(600, 7), -32600, 7),
        (nested(990, 7), -32600, 7),
        (nested(5000, 7), -32600, 7),
        (buried, -32600, None),
    ]
    async with open_stack(devnet) as stack:
        lasso_ws = str(stack.client.base_url).replace("http", "ws", 1) + "/ws/rpc/devnet"
        with trio.fail_after(20):
            async with open_websocket_url(lasso_ws) as ws:
                for body, code, rid in cases:
                    http = await stack.client.post("/rpc/devnet", content=body)
                    await ws.send_message(body)
                    ws_answer = msgspec.json.decode(await ws.get_message())
                    assert http.status_code == 400
                    for answer in (http.json(), ws_answer):
                        assert answer["error"]["code"] == code, body[:60]
                        assert answer["id"] == rid, body[:60]
            circuits = await stack.circuits()
    assert circuits == ["closed"] * 6
    # Bad input is normal input: no traceback, no error line (before: one per request).
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- item 12: an error every provider agrees on reaches the client unchanged ------------

#: (method, params, upstream calls Lasso may spend): one when the first answer is
#: authoritative; every provider (max_attempts) when another node might serve it.
NODE_ERRORS: list[tuple[str, list[Any], int]] = [
    ("eth_nosuch", [], 1),  # -32601; an unknown method may be a write: never replayed
    ("eth_getBalance", ["0x12", "latest"], 1),  # -32602 invalid params: the node's verdict
    ("eth_getBlockByNumber", [], 1),  # -32602 wrong arity
    ("eth_blockNumber", [1], 1),  # -32602 "expected unit"
    ("eth_getBalance", [ZERO_ADDRESS, "0xffffff"], 3),  # block beyond head: a lagging node?
    ("eth_call", [{"to": ZERO_ADDRESS}, "0xfffffff"], 3),
    ("eth_getLogs", [{"fromBlock": "0x50", "toBlock": "0x60"}], 3),
    ("eth_getTransactionByHash", ["0x" + "00" * 32], 1),  # a result: null
    ("eth_getBlockByNumber", ["0xffffff", False], 1),  # a result: null
]


@asynccontextmanager
async def open_counted_stack(devnet: Devnet) -> AsyncIterator[tuple[Stack, list[FaultProxy]]]:
    """Lasso in front of counting proxies, HTTP only, so every upstream call is seen."""
    async with open_fault_proxies(devnet) as proxies:
        providers = ",\n".join(
            f'{{ id = "p{i}", url = "{p.url}", priority = {i} }}' for i, p in enumerate(proxies)
        )
        toml = (
            "[server]\nshutdown_grace_ms = 200\n"
            "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\n"
            f"providers = [\n{providers}\n]\n"
        )
        async with (
            open_lasso(parse_settings(toml, env={})) as base,
            httpx.AsyncClient(base_url=base, trust_env=False) as client,
        ):
            yield Stack(devnet, client), proxies


async def test_node_errors_come_back_unchanged_at_the_cost_they_deserve(devnet: Devnet) -> None:
    async with open_counted_stack(devnet) as (stack, proxies):
        with trio.fail_after(30):
            for rid, (method, params, calls) in enumerate(NODE_ERRORS):
                body = msgspec.json.encode(
                    {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
                )
                node = await stack.client.post(stack.node_url, content=body, headers=JSON)
                for proxy in proxies:
                    proxy.calls.clear()
                via = await stack.client.post("/rpc/devnet?include_meta=headers", content=body)
                assert via.content == node.content, method
                assert sum(p.calls[method] for p in proxies) == calls, method
                if "error" in node.json():  # the attempts are in the routing metadata
                    meta = via.headers["x-lasso-meta"]
                    decoded = msgspec.json.decode(
                        base64.urlsafe_b64decode(meta + "=" * (-len(meta) % 4))
                    )
                    assert len(decoded["attempts"]) == calls, method
            circuits = await stack.circuits()
    assert circuits == ["closed"] * 3


async def test_an_unknown_method_reads_as_the_node_says_it_over_http(devnet: Devnet) -> None:
    # Over WebSocket anvil answers an unknown method with a vague -32602; the call was
    # not executed, so Lasso may try on, and the HTTP words are the answer.
    async with open_stack(devnet) as stack:
        with trio.fail_after(20):
            for rid in range(8):
                body = req_body(rid, "eth_nosuch", [])
                node = await stack.client.post(stack.node_url, content=body, headers=JSON)
                via = await stack.client.post("/rpc/devnet", content=body)
                assert via.content == node.content
                assert node.json()["error"]["code"] == -32601


def req_body(rid: int, method: str, params: list[Any]) -> bytes:
    return msgspec.json.encode({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
