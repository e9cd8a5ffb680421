"""The inbound gate through the real front end: ``lasso.daemon.serve`` on a loopback port.

Hypercorn's protocol code under Lasso's accept loop, real HTTP and WebSocket clients,
and a loopback fake node upstream (the gate answers before any upstream is asked, so a
real node adds nothing). Rates are set so low (``rps = 0.001``: a token every 1,000 s)
that no token comes back while a test runs: the counts are exact on a real clock, however
loaded the machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from lasso.config import parse_settings
from tests.support.auth_node import open_auth_node
from tests.support.front import open_lasso
from tests.support.hostile import HttpResponse, handshake_request, read_http_response

KEY_A = "alpha-0123456789abcdef"
KEY_B = "bravo-0123456789abcdef"
KEY_C = "charlie-from-the-env-0123"
KEYS = f"""
[auth]
api_keys = [
  {{ name = "team-a", key = "{KEY_A}" }},
  {{ name = "team-b", sha256 = "{hashlib.sha256(KEY_B.encode()).hexdigest()}" }},
  {{ name = "team-c", key = "${{GATE_TEST_KEY}}" }},
]
"""
SLOW_BUCKET = "[rate_limit]\nrps = 0.001\nburst = 20\n"


@asynccontextmanager
async def open_gated(extra: str) -> AsyncIterator[str]:
    """Lasso (with ``extra`` settings) before a loopback node; yields its base URL."""
    async with open_auth_node("Bearer node-secret") as node:
        text = (
            f"{extra}\n[server]\nshutdown_grace_ms = 200\n" if "[server]" not in extra else extra
        ) + (
            "[chains.fake]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [ "
            f'{{ id = "f1", url = "http://127.0.0.1:{node.http_port}", api_key = "node-secret" }}'
            " ]\n"
        )
        settings = parse_settings(text, env={"GATE_TEST_KEY": KEY_C})
        async with open_lasso(settings) as base:
            yield base


def call(rid: Any, method: str = "eth_chainId") -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": []})


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


async def handshake(base: str, path: str, headers: list[tuple[str, str]]) -> HttpResponse:
    """A WebSocket handshake by hand (trio-websocket's client leaks its socket when
    rejected); returns the server's answer to it."""
    port = int(base.rsplit(":", 1)[1])
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
    request = handshake_request(f"127.0.0.1:{port}", path)
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(request[:-2] + extra + b"\r\n")
        return await read_http_response(stream)


async def frames(ws: WebSocketConnection, ids: list[Any]) -> dict[Any, dict[str, Any]]:
    for rid in ids:
        await ws.send_message(call(rid))
    answers = [json.loads(await ws.get_message()) for _ in ids]
    return {a["id"]: a for a in answers}


async def test_an_http_burst_past_the_limit_gets_429_retry_after_and_32005() -> None:
    with trio.fail_after(30):
        async with open_gated(SLOW_BUCKET) as base, httpx.AsyncClient(base_url=base) as http:
            answers = [await http.post("/rpc/fake", content=call(rid)) for rid in range(50)]
    admitted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(admitted) == 20 and len(refused) == 30
    assert all(a.json()["result"] == "0x7a69" for a in admitted)
    for rid, answer in enumerate(refused, start=20):
        body = answer.json()
        assert body["id"] == rid and body["jsonrpc"] == "2.0"
        assert body["error"]["code"] == -32005
        assert body["error"]["message"] == "Rate limit exceeded: too many requests"
        retry_ms = body["error"]["data"]["retry_after_ms"]
        assert 900_000 < retry_ms <= 1_000_000  # one token at 0.001/s, less what came back
        assert answer.headers["retry-after"] == str(-(-retry_ms // 1000))  # seconds, rounded up
        assert answer.headers["content-type"] == "application/json"


async def test_websocket_calls_take_from_the_same_bucket_and_the_socket_stays_open() -> None:
    with trio.fail_after(30):
        async with open_gated(SLOW_BUCKET) as base, httpx.AsyncClient(base_url=base) as http:
            for rid in range(5):
                assert (await http.post("/rpc/fake", content=call(rid))).status_code == 200
            async with open_websocket_url(ws_url(base, "/ws/rpc/fake")) as ws:
                answers = await frames(ws, [f"w{i}" for i in range(25)])
                ok = [rid for rid, a in answers.items() if "result" in a]
                refused = [a for a in answers.values() if "error" in a]
                assert len(ok) == 15 and len(refused) == 10  # 20 - 5 taken over HTTP
                assert {a["error"]["code"] for a in refused} == {-32005}
                assert all(a["error"]["data"]["retry_after_ms"] > 900_000 for a in refused)
                # Still open: the next frame is answered (refused), not dropped.
                assert (await frames(ws, ["again"]))["again"]["error"]["code"] == -32005
                assert not ws.closed
            http_after = await http.post("/rpc/fake", content=call("h"))
            assert http_after.status_code == 429  # and HTTP sees the bucket WS emptied


@pytest.mark.slow
async def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    spoofed = [{"X-Forwarded-For": f"198.51.100.{n}"} for n in range(30)]
    with trio.fail_after(30):
        # The peer (127.0.0.1) is no trusted proxy: a header per request changes nothing.
        async with open_gated(SLOW_BUCKET) as base, httpx.AsyncClient(base_url=base) as http:
            statuses = [
                (await http.post("/rpc/fake", content=call(n), headers=h)).status_code
                for n, h in enumerate(spoofed)
            ]
        assert statuses.count(200) == 20 and statuses.count(429) == 10
        # Behind a trusted proxy, each forwarded client has its own bucket.
        trusted = (
            SLOW_BUCKET + '[server]\nshutdown_grace_ms = 200\ntrusted_proxies = ["127.0.0.1/32"]\n'
        )
        async with open_gated(trusted) as base, httpx.AsyncClient(base_url=base) as http:
            statuses = [
                (await http.post("/rpc/fake", content=call(n), headers=h)).status_code
                for n, h in enumerate(spoofed)
            ]
            assert statuses == [200] * 30
            # A client that prepends its own lie is still known by what the proxy saw.
            lies = [{"X-Forwarded-For": f"6.6.6.{n}, 203.0.113.9"} for n in range(25)]
            statuses = [
                (await http.post("/rpc/fake", content=call(n), headers=h)).status_code
                for n, h in enumerate(lies)
            ]
            assert statuses.count(200) == 20 and statuses.count(429) == 5


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/rpc/fake", {"X-Lasso-Api-Key": KEY_A}),
        (f"/rpc/fake?api_key={KEY_A}", {}),
        (f"/rpc/fake/{KEY_A}", {}),
        (f"/rpc/fastest/fake/{KEY_A}", {}),
        ("/rpc/fake", {"X-Lasso-Api-Key": KEY_B}),  # configured as its SHA-256
        (f"/rpc/fake/{KEY_C}", {}),  # configured as ${GATE_TEST_KEY}
    ],
)
async def test_http_accepts_a_valid_key_in_each_form(path: str, headers: dict[str, str]) -> None:
    with trio.fail_after(30):
        async with open_gated(KEYS) as base, httpx.AsyncClient(base_url=base) as http:
            answer = await http.post(path, content=call(1, "eth_blockNumber"), headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"jsonrpc": "2.0", "id": 1, "result": "0x64"}  # from the node


async def test_http_refuses_a_missing_or_wrong_key_in_each_form_with_401() -> None:
    denials = [
        ("/rpc/fake", {}, "Unauthorized: an API key is required"),
        ("/rpc/fake", {"X-Lasso-Api-Key": KEY_A[:-1]}, "Unauthorized: invalid API key"),
        (f"/rpc/fake?api_key={KEY_A}x", {}, "Unauthorized: invalid API key"),
        (f"/rpc/fake/{KEY_B.upper()}", {}, "Unauthorized: invalid API key"),
    ]
    with trio.fail_after(30):
        async with open_gated(KEYS) as base, httpx.AsyncClient(base_url=base) as http:
            for path, headers, message in denials:
                answer = await http.post(path, content=call(3), headers=headers)
                assert answer.status_code == 401, path
                assert answer.headers["content-type"] == "application/json"
                assert answer.json() == {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32001, "message": message},
                }


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/ws/rpc/fake", [("X-Lasso-Api-Key", KEY_A)]),
        (f"/ws/rpc/fake?api_key={KEY_B}", []),
        (f"/ws/rpc/fake/{KEY_C}", []),
    ],
)
async def test_websocket_accepts_a_valid_key_in_each_form(
    path: str, headers: list[tuple[str, str]]
) -> None:
    with trio.fail_after(30):
        async with (
            open_gated(KEYS) as base,
            open_websocket_url(ws_url(base, path), extra_headers=headers) as ws,
        ):
            assert (await frames(ws, [1]))[1]["result"] == "0x7a69"


@pytest.mark.parametrize(
    ("path", "headers", "good_path", "good_headers"),
    [
        ("/ws/rpc/fake", [], "/ws/rpc/fake", [("X-Lasso-Api-Key", KEY_A)]),
        (
            "/ws/rpc/fake",
            [("X-Lasso-Api-Key", "nope")],
            "/ws/rpc/fake",
            [("X-Lasso-Api-Key", KEY_B)],
        ),
        ("/ws/rpc/fake?api_key=nope", [], f"/ws/rpc/fake?api_key={KEY_A}", []),
        ("/ws/rpc/fake/nope", [], f"/ws/rpc/fake/{KEY_C}", []),
    ],
)
async def test_websocket_without_a_valid_key_is_refused_401_at_the_handshake(
    path: str,
    headers: list[tuple[str, str]],
    good_path: str,
    good_headers: list[tuple[str, str]],
) -> None:
    with trio.fail_after(30):
        async with open_gated(KEYS) as base:
            rejected = await handshake(base, path, headers)
            accepted = await handshake(base, good_path, good_headers)
    assert rejected.status == 401
    assert rejected.headers["content-type"] == "application/json"
    assert json.loads(rejected.body) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32001, "message": rejected_message(headers, path)},
    }
    assert accepted.status == 101  # the same handshake with a good key is let through


def rejected_message(headers: list[tuple[str, str]], path: str) -> str:
    given = headers or "api_key" in path or path.endswith("/nope")
    return "Unauthorized: invalid API key" if given else "Unauthorized: an API key is required"


async def test_a_client_over_its_websocket_cap_is_refused_429_at_the_handshake() -> None:
    with trio.fail_after(30):
        async with (
            open_gated("[rate_limit]\nmax_ws_per_client = 1\n") as base,
            open_websocket_url(ws_url(base, "/ws/rpc/fake")) as first,
        ):
            rejected = await handshake(base, "/ws/rpc/fake", [])
            assert (await frames(first, [1]))[1]["result"] == "0x7a69"
    assert rejected.status == 429 and rejected.headers["retry-after"] == "1"
    assert json.loads(rejected.body)["error"]["code"] == -32005


async def test_protect_observability_guards_metrics_and_api_but_never_health() -> None:
    with trio.fail_after(30):
        extra = KEYS + "protect_observability = true\n"
        async with open_gated(extra) as base, httpx.AsyncClient(base_url=base) as http:
            for path in ("/metrics", "/api/chains"):
                denied = await http.get(path)
                assert denied.status_code == 401, path
                assert denied.json()["error"]["code"] == -32001
                allowed = await http.get(path, headers={"X-Lasso-Api-Key": KEY_A})
                assert allowed.status_code == 200, path
            assert (await http.get(f"/metrics?api_key={KEY_B}")).status_code == 200
            assert (await http.get("/health")).status_code == 200
