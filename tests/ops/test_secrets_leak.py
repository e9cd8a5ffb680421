"""Secrets never leave: a real ``lasso serve`` process, real upstreams, planted secrets.

Provider credentials are planted in every place a provider takes one: a URL path
(``/v3/<key>``, ``/ws/<key>``), a query (``?apikey=``), userinfo (``user:pass@``,
which Lasso sends as HTTP Basic) and a header (``Authorization: Bearer``). The
upstreams are real sockets:

- ``keyed``: the fault proxy in front of a real anvil node (HTTP), and a WebSocket
  relay to the same node that the test cuts mid-run (a provider that drops);
- ``echo``: a provider whose 404 page quotes the request line and its
  ``Authorization`` header, as misconfigured providers do, and whose WebSocket
  refuses the key quoting its path (a rejected handshake, or a close reason);
- ``down``: nothing listens.

Traffic: successes, failures on each provider (error bodies, ``?include_meta=body``
and ``x-lasso-meta`` routing metadata), the fault proxy's 500 and reset, WebSocket
calls and a subscription across the drop, a batch. Then every GET route the Quart
app registers (walked from ``app.url_map``, so routes added later are covered: the
dashboard, its feed, ``/api/*``), and the daemon's DEBUG log from start to
shutdown. None may hold a planted secret, in any form Lasso could have sent it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)

from lasso.chaos.faultproxy import open_fault_proxy
from lasso.chaos.faults import Fault
from lasso.config import parse_settings
from lasso.devnet import open_devnet
from lasso.gateway import Gateway
from lasso.web.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
LASSO = (sys.executable, "-m", "lasso")

PATH_KEY = "SECRETPATHTOKEN123"
QUERY_KEY = "SECRETQUERYTOKEN456"
HEADER_KEY = "SECRETHEADERTOKEN789"
WS_PATH_KEY = "SECRETWSPATHTOKEN42"
USER_PASSWORD = "SECRETUSERPASS31"
#: Every form a planted secret could take on the way out (the Basic header included).
PLANTED = (
    PATH_KEY,
    QUERY_KEY,
    HEADER_KEY,
    WS_PATH_KEY,
    USER_PASSWORD,
    base64.b64encode(f"user:{USER_PASSWORD}".encode()).decode(),
)

SETTINGS = """
[chains.devnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 250

[[chains.devnet.providers]]
id = "keyed"
priority = 0
url = "http://127.0.0.1:{proxy}/v3/{path_key}?apikey={query_key}"
ws_url = "ws://127.0.0.1:{relay}/ws/{ws_key}?apikey={query_key}"
headers = {{ Authorization = "Bearer {header_key}" }}

[[chains.devnet.providers]]
id = "echo"
priority = 1
url = "http://user:{password}@127.0.0.1:{echo}/v3/{path_key}?apikey={query_key}"
ws_url = "ws://user:{password}@127.0.0.1:{rejecter}/ws/{ws_key}?apikey={query_key}"

[[chains.devnet.providers]]
id = "down"
priority = 2
url = "http://127.0.0.1:{closed}/v3/{path_key}?apikey={query_key}"
ws_url = "ws://127.0.0.1:{closed}/ws/{ws_key}"
headers = {{ Authorization = "Bearer {header_key}" }}
"""


def leaks(text: str) -> list[str]:
    """The planted secrets in ``text``, raw or percent-encoded."""
    return [s for s in PLANTED if s in text or quote(s, safe="") in text]


def where(text: str) -> dict[str, Any]:
    """For a failure message: on how many lines each planted secret occurs, and where."""
    out: dict[str, Any] = {}
    for secret in leaks(text):
        lines = [line for line in text.splitlines() if secret in line]
        near = [line[max(0, line.index(secret) - 200) :][:300] for line in lines[:3]]
        out[secret] = {"lines": len(lines), "near": near}
    return out


# --- the upstreams ---------------------------------------------------------------------------


async def _echo_404(stream: trio.SocketStream) -> None:
    """A provider that answers every request 404, quoting its request line and credentials."""
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            fields = {k.lower(): v for k, v in fields.items()}
            length = int(fields.get("content-length", "0"))
            while len(buffer) < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            page = f"Bad key: {fields.get('authorization')} for {lines[0]}".encode()
            await stream.send_all(
                b"HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\n"
                b"content-length: %d\r\n\r\n%b" % (len(page), page)
            )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


class WsRelay:
    """A WebSocket endpoint on any path, relaying every message to a real node's WebSocket;
    :meth:`drop` cuts every relayed connection (the client sees its TCP stream end)."""

    def __init__(self, node_ws_url: str) -> None:
        self.node_ws_url = node_ws_url
        self.port = 0
        self.connections: list[WebSocketConnection] = []
        self.accepted = 0

    async def serve(self, request: WebSocketRequest) -> None:
        client = await request.accept()
        self.connections.append(client)
        self.accepted += 1
        try:
            async with (
                open_websocket_url(self.node_ws_url) as node,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(self._pump, node, client, nursery.cancel_scope)
                await self._pump(client, node, nursery.cancel_scope)
        except Exception:  # the relayed connection ended, however it ended
            pass

    async def _pump(
        self, source: WebSocketConnection, sink: WebSocketConnection, scope: trio.CancelScope
    ) -> None:
        try:
            while True:
                await sink.send_message(await source.get_message())
        except ConnectionClosed:
            scope.cancel()

    async def drop(self) -> None:
        """Cut every relayed connection's TCP stream (no close handshake)."""
        for conn in self.connections:
            await conn._stream.aclose()  # the abrupt end a dying provider gives
        self.connections.clear()


class QuotingWs:
    """A WebSocket endpoint that refuses our key, quoting the path it came in: the
    handshake rejected with 401 on odd connections, accepted then closed (4001) on even."""

    def __init__(self) -> None:
        self.connections = 0

    async def serve(self, request: WebSocketRequest) -> None:
        self.connections += 1
        if self.connections % 2:
            await request.reject(401, body=f"bad key in {request.path}".encode())
            return
        ws = await request.accept()
        await ws.aclose(code=4001, reason=f"bad key in {request.path}")


@asynccontextmanager
async def open_upstreams() -> AsyncIterator[dict[str, Any]]:
    async with (
        open_devnet(nodes=1, block_time_s=None, port_base=0) as devnet,
        open_fault_proxy(devnet.nodes[0].http_url) as proxy,
        trio.open_nursery() as nursery,
    ):
        await devnet.mine()
        relay = WsRelay(devnet.nodes[0].ws_url)
        echo = await nursery.start(partial(trio.serve_tcp, _echo_404, 0, host=HOST))
        relay_server = await nursery.start(partial(serve_websocket, relay.serve, HOST, 0, None))
        rejecter = await nursery.start(partial(serve_websocket, QuotingWs().serve, HOST, 0, None))
        closed = trio.socket.socket()
        await closed.bind((HOST, 0))  # bound, never listening: connection refused
        yield {
            "devnet": devnet,
            "proxy": proxy,
            "relay": relay,
            "ports": {
                "proxy": int(proxy.url.rsplit(":", 1)[1].split("/")[0]),
                "relay": relay_server.port,
                "echo": echo[0].socket.getsockname()[1],
                "rejecter": rejecter.port,
                "closed": closed.getsockname()[1],
            },
        }
        closed.close()
        nursery.cancel_scope.cancel()


# --- the daemon ------------------------------------------------------------------------------


@asynccontextmanager
async def lasso_serve(config: Path, log_path: Path) -> AsyncIterator[tuple[str, bytearray]]:
    """``lasso serve --log-level debug`` as a real process; its log (stderr) goes to
    ``log_path``, its stdout (the banner) is returned."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(
            [*LASSO, "serve", "--config", str(config), "--port", "0", "--log-level", "debug"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            env=env,
            cwd=REPO,
        )
    assert process.stdout is not None
    out = bytearray()
    try:
        while b"/health" not in out:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, bytes(out)
            out += chunk
        base = out.split(b"listening on ")[1].split()[0].decode().rstrip(",")
        yield base, out
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            while chunk := await process.stdout.receive_some(4096):
                out += chunk
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()


def _rpc(method: str, params: list[Any] | None = None, rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}


ROUTES_ONLY = """
[chains.devnet]
chain_id = 31337
[[chains.devnet.providers]]
id = "keyed"
url = "http://127.0.0.1:9"
"""


def get_routes() -> list[str]:
    """Every GET path the Quart app registers, with sample values for its arguments."""
    # Routes only: no handler runs here, and the gateway's providers never start.
    gateway = Gateway(parse_settings(ROUTES_ONLY, env={}))
    app = create_app(gateway, metrics=cast(Any, object()))
    samples = {"chain": "devnet", "profile": "default", "provider": "keyed", "provider_id": "keyed"}
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        paths.append(
            re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: samples.get(m[1], "devnet"), rule.rule)
        )
    return sorted(set(paths))


async def fetch_bounded(client: httpx.AsyncClient, url: str, seconds: float = 1.5) -> str:
    """A GET's body; a stream (SSE) is read for ``seconds`` at most."""
    seen = bytearray()
    with trio.move_on_after(seconds):
        async with client.stream("GET", url) as response:
            seen += f"HTTP {response.status_code} {dict(response.headers)}\n".encode()
            async for chunk in response.aiter_bytes():
                seen += chunk
                if len(seen) > 4 << 20:
                    break
    return seen.decode("utf-8", "replace")


async def drive_traffic(base: str, upstreams: dict[str, Any], seen: dict[str, list[str]]) -> None:
    proxy, relay = upstreams["proxy"], upstreams["relay"]
    async with httpx.AsyncClient(timeout=10) as client:

        async def post(path: str, body: Any, surface: str, **headers: str) -> httpx.Response:
            response = await client.post(f"{base}{path}", json=body, headers=headers)
            seen[surface].append(f"{response.status_code} {dict(response.headers)} {response.text}")
            meta = response.headers.get("x-lasso-meta")
            if meta is not None:
                decoded = base64.urlsafe_b64decode(meta + "=" * (-len(meta) % 4)).decode()
                seen["routing metadata (x-lasso-meta)"].append(decoded)
            return response

        ok = await post("/rpc/devnet", _rpc("eth_blockNumber"), "answers")
        assert "result" in ok.json(), ok.text
        for provider in ("echo", "down", "keyed"):
            await post(
                f"/rpc/provider/{provider}/devnet?include_meta=body",
                _rpc("eth_blockNumber"),
                "error bodies + lasso_meta",
            )
        for fault in (Fault.HTML_500, Fault.RESET, Fault.RATE_LIMITED_429):
            proxy.fault = fault
            await post(
                "/rpc/devnet?include_meta=body",
                _rpc("eth_getBalance", ["0x" + "11" * 20, "latest"]),
                "error bodies + lasso_meta",
            )
            await post(
                "/rpc/provider/keyed/devnet",
                _rpc("eth_chainId"),
                "error bodies + lasso_meta",
                **{"X-Lasso-Include-Meta": "headers"},
            )
        proxy.fault = None
        await post(
            "/rpc/devnet?include_meta=body",
            [_rpc("eth_blockNumber", rid=i) for i in range(3)],
            "answers",
        )
        await post(
            "/rpc/provider/nosuch/devnet", _rpc("eth_blockNumber"), "error bodies + lasso_meta"
        )

        ws_base = base.replace("http://", "ws://")
        async with open_websocket_url(f"{ws_base}/ws/rpc/devnet?include_meta=body") as ws:
            await ws.send_message(json.dumps(_rpc("eth_subscribe", ["newHeads"], rid=7)))
            await ws.send_message(json.dumps(_rpc("eth_blockNumber", rid=8)))
            for _ in range(2):
                with trio.fail_after(10):
                    seen["websocket frames"].append(await ws.get_message())
            await relay.drop()  # the keyed provider's WebSocket drops under the subscription
            await upstreams["devnet"].mine()
            await ws.send_message(json.dumps(_rpc("eth_blockNumber", rid=9)))
            with trio.move_on_after(3):
                while True:
                    seen["websocket frames"].append(await ws.get_message())
        async with open_websocket_url(f"{ws_base}/ws/rpc/provider/echo/devnet") as ws:
            await ws.send_message(json.dumps(_rpc("eth_blockNumber", rid=10)))
            with trio.fail_after(10):
                seen["websocket frames"].append(await ws.get_message())

        for path in get_routes():
            seen[f"GET {path}"].append(await fetch_bounded(client, f"{base}{path}"))
        for path in ("/health?ready", "/api/metrics/devnet?profile=default"):
            seen[f"GET {path}"].append(await fetch_bounded(client, f"{base}{path}"))


async def failing_in_the_background(base: str) -> None:
    """Wait (polled) until the echo and down providers' WebSockets have each failed to
    connect three times: their errors are in /health and the log."""
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            health = (await client.get(f"{base}/health")).json()
            providers = {p["id"]: p for p in health["chains"]["devnet"]["providers"]}
            failed = [providers[name]["ws"]["transport"] for name in ("echo", "down")]
            if all(t["reconnects"] >= 3 and t["last_error"] for t in failed):
                return
            await trio.sleep(0.05)


async def test_no_planted_secret_leaves_the_daemon(tmp_path: Path) -> None:
    from collections import defaultdict

    seen: dict[str, list[str]] = defaultdict(list)
    with trio.fail_after(60):
        async with open_upstreams() as upstreams:
            ports = upstreams["ports"]
            config = tmp_path / "lasso.toml"
            config.write_text(
                SETTINGS.format(
                    **ports,
                    path_key=PATH_KEY,
                    query_key=QUERY_KEY,
                    header_key=HEADER_KEY,
                    ws_key=WS_PATH_KEY,
                    password=USER_PASSWORD,
                )
            )
            log_path = tmp_path / "lasso.log"
            async with lasso_serve(config, log_path) as (base, banner):
                await drive_traffic(base, upstreams, seen)
                await failing_in_the_background(base)
            seen["banner (stdout)"].append(banner.decode())
            seen["log (stderr, DEBUG)"].append(log_path.read_text())

    found = {surface: where("\n".join(texts)) for surface, texts in seen.items()}
    found = {surface: hits for surface, hits in found.items() if hits}
    assert found == {}, json.dumps(found, indent=1)
    # The traffic did what it was meant to: failures were seen and described.
    log = seen["log (stderr, DEBUG)"][0]
    assert "127.0.0.1" in log and "/v3/***" in "\n".join(seen["GET /health"])
    errors = "\n".join(seen["error bodies + lasso_meta"])
    assert '"attempts"' in errors and "echo" in errors and "down" in errors
    assert len(get_routes()) >= 6
