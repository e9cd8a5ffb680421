"""Userinfo in a provider URL is sent as HTTP Basic auth and shown nowhere.

A real loopback node (``tests.support.auth_node``) checks the ``Authorization``
header of every HTTP request and WebSocket handshake; Lasso's real front end
(hypercorn on a loopback socket) sits in front of it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.config.secrets import basic_auth, with_url_credentials
from tests.support.auth_node import AuthNode, open_auth_node
from tests.support.front import open_lasso

USER, PASSWORD = "us@er", "p:s s"
USERINFO = "us%40er:p%3As%20s"
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (USERINFO, "us%40er", "p%3As%20s", USER, PASSWORD, EXPECTED.split()[1])


@pytest.mark.parametrize(
    ("url", "value"),
    [
        ("https://user:pass@h/v1", "Basic " + base64.b64encode(b"user:pass").decode()),
        (f"http://{USERINFO}@h:1", EXPECTED),
        ("https://KEY@h", "Basic " + base64.b64encode(b"KEY:").decode()),
        ("https://:tok@h", "Basic " + base64.b64encode(b":tok").decode()),
        ("wss://%C3%A9:x@h", "Basic " + base64.b64encode("é:x".encode()).decode()),
        ("https://h/v2/key", None),
        ("http://[::1", None),
    ],
)
def test_basic_auth_from_userinfo(url: str, value: str | None) -> None:
    assert basic_auth(url) == value


def test_an_explicit_authorization_header_wins() -> None:
    url = "https://user:pass@h"
    assert with_url_credentials(url, {"Authorization": "Bearer x"}) == {"authorization": "Bearer x"}
    assert with_url_credentials(url, {"X-Key": "1"}) == {
        "x-key": "1",
        "authorization": basic_auth(url),
    }
    assert with_url_credentials("https://h", {}) == {}


def settings_text(node: AuthNode, headers: str = "{}") -> str:
    return f"""
[chains.devnet]
chain_id = 31337

[[chains.devnet.providers]]
id = "locked"
url = "http://{USERINFO}@127.0.0.1:{node.http_port}/rpc"
ws_url = "ws://{USERINFO}@127.0.0.1:{node.ws_port}/"
headers = {headers}
"""


@pytest.fixture
async def front(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AuthNode, str]]:
    expected, headers = getattr(request, "param", (EXPECTED, "{}"))
    async with open_auth_node(expected) as node:
        settings = parse_settings(settings_text(node, headers), env={})
        async with open_lasso(settings) as base:
            yield node, base


async def ask(client: httpx.AsyncClient, url: str) -> dict[str, object]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    response = await client.post(url, content=json.dumps(body))
    answer: dict[str, object] = response.json()
    return answer


async def wait_ws_connected(client: httpx.AsyncClient, base: str) -> None:
    with trio.fail_after(10):
        while True:
            report = (await client.get(f"{base}/health")).json()
            if report["chains"]["devnet"]["providers"][0]["ws"]["connected"]:
                return
            await trio.sleep(0.02)  # bounded poll of a condition in another process' view


@pytest.mark.slow
async def test_credentials_reach_the_node_over_http_and_ws_and_leak_nowhere(
    front: tuple[AuthNode, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node, base = front
    async with httpx.AsyncClient(timeout=10) as client:
        await wait_ws_connected(client, base)
        with trio.fail_after(10):
            over_http = await ask(client, f"{base}/rpc/devnet?transport=http")
            over_ws = await ask(client, f"{base}/rpc/devnet?transport=ws")
            shown = [
                (await client.get(f"{base}{path}")).text
                for path in (
                    "/health",
                    "/api/health",
                    "/api/chains",
                    "/metrics",
                    "/api/metrics/devnet",
                )
            ]
    assert over_http == {"jsonrpc": "2.0", "id": 1, "result": "0x64"}
    assert over_ws == {"jsonrpc": "2.0", "id": 1, "result": "0x64"}
    assert node.seen_http and set(node.seen_http) == {EXPECTED}
    assert node.seen_ws and set(node.seen_ws) == {EXPECTED}
    assert node.node.calls.count("eth_blockNumber") == 2  # one over each transport
    provider = json.loads(shown[0])["chains"]["devnet"]["providers"][0]
    assert provider["url"] == f"http://***:***@127.0.0.1:{node.http_port}/rpc"
    assert provider["ws_url"] == f"ws://***:***@127.0.0.1:{node.ws_port}/"
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        for text in [*shown, logs]:
            assert secret not in text


@pytest.mark.slow
@pytest.mark.parametrize(
    "front", [("Bearer explicit", '{ Authorization = "Bearer explicit" }')], indirect=True
)
async def test_an_explicit_authorization_header_is_sent_instead(
    front: tuple[AuthNode, str],
) -> None:
    node, base = front
    async with httpx.AsyncClient(timeout=10) as client:
        await wait_ws_connected(client, base)
        with trio.fail_after(10):
            assert (await ask(client, f"{base}/rpc/devnet?transport=http"))["result"] == "0x64"
            assert (await ask(client, f"{base}/rpc/devnet?transport=ws"))["result"] == "0x64"
    assert set(node.seen_http) == {"Bearer explicit"}
    assert set(node.seen_ws) == {"Bearer explicit"}


@pytest.mark.slow
@pytest.mark.parametrize("front", [("Basic d3Jvbmc6Y3JlZHM=", "{}")], indirect=True)
async def test_a_refused_login_names_no_credentials(
    front: tuple[AuthNode, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    node, base = front
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(10):
            answer = await ask(client, f"{base}/rpc/devnet")
            await node.handshake.wait()  # the WebSocket has tried and been refused
    assert "error" in answer
    text = json.dumps(answer) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in text
