"""The probe's direct client: a two-call batch, and eth_subscribe over a real WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from lasso.config import ProviderConfig
from lasso.probe.client import _batch_answered, probe_subscriptions
from tests.probe.test_probe_cli import closed_port


def test_a_batch_is_supported_when_both_answers_come_back() -> None:
    body = b'[{"jsonrpc":"2.0","id":2,"result":"0x1"},{"jsonrpc":"2.0","id":1,"result":"0x7a69"}]'
    assert _batch_answered(200, body, {1, 2}) == (True, "")


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (200, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"batch not supported"}}',
         "not a JSON array: "),
        (200, b'[{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"batches are disabled"}},'
              b'{"jsonrpc":"2.0","id":2,"error":{"code":-32600,"message":"batches are disabled"}}]',
         "batches are disabled"),
        (200, b'[{"jsonrpc":"2.0","id":1,"result":"0x7a69"}]', "1 answers for 2 calls"),
        (413, b"too large", "HTTP 413"),
    ],
)  # fmt: skip
def test_a_batch_is_unsupported_otherwise(status: int, body: bytes, detail: str) -> None:
    supported, said = _batch_answered(status, body, {1, 2})
    assert supported is False
    assert said.startswith(detail)


@asynccontextmanager
async def ws_node(answer: Any, seen: list[str]) -> AsyncIterator[str]:
    """A WebSocket node answering every request's id with ``answer`` (a dict merged in)."""

    async def serve(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                message = msgspec.json.decode(await ws.get_message())
                seen.append(message["method"])
                await ws.send_message(
                    msgspec.json.encode({"jsonrpc": "2.0", "id": message["id"], **answer}).decode()
                )
        except ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve_websocket, serve, "127.0.0.1", 0, None))
        yield f"ws://127.0.0.1:{server.port}"
        nursery.cancel_scope.cancel()


def provider(ws_url: str | None) -> ProviderConfig:
    return ProviderConfig(id="p", url="http://127.0.0.1:1", ws_url=ws_url)


async def test_a_subscription_is_made_then_cancelled() -> None:
    seen: list[str] = []
    async with ws_node({"result": "0xabc"}, seen) as url:
        with trio.fail_after(5):
            assert await probe_subscriptions(provider(url)) == (True, "")
    assert seen == ["eth_subscribe", "eth_unsubscribe"]


async def test_a_node_refusing_eth_subscribe_does_not_support_subscriptions() -> None:
    seen: list[str] = []
    refusal = {"error": {"code": -32601, "message": "the method eth_subscribe does not exist"}}
    async with ws_node(refusal, seen) as url:
        with trio.fail_after(5):
            result = await probe_subscriptions(provider(url))
    assert result == (False, "the method eth_subscribe does not exist")


async def test_no_ws_url_or_no_websocket_is_unknown() -> None:
    assert await probe_subscriptions(provider(None)) == (None, "no ws_url")
    with trio.fail_after(5):
        supported, detail = await probe_subscriptions(provider(f"ws://127.0.0.1:{closed_port()}"))
    assert supported is None
    assert detail.startswith("ws://127.0.0.1:")
    assert "OSError" in detail, detail
