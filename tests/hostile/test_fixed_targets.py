"""Fixed targets: no header, path or body can point the gateway at another host.

Every request goes through the real front end (``lasso.daemon.serve`` before a
real devnet) as the exact bytes a hostile client sends, each naming a *canary*:
a TCP listener on a loopback port that is no provider. Whatever the request
gets back (a JSON-RPC error, or a result from a configured provider), the
canary must see no connection at all, and the answer must be JSON, never
HTML or a traceback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio

from tests.hostile.conftest import Front, open_front
from tests.support.hostile import (
    HttpResponse,
    close_reason,
    handshake_request,
    open_raw_websocket,
    read_head,
    read_http_response,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Canary:
    """A listener no request may ever reach: it counts the connections it gets."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self.listener = listener
        self.port: int = listener.socket.getsockname()[1]
        self.hits: list[bytes] = []
        self.hit = trio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def run(self) -> None:
        while True:
            stream = await self.listener.accept()
            with trio.move_on_after(0.5):
                self.hits.append(await stream.receive_some(4096))
            self.hit.set()
            await stream.aclose()


@asynccontextmanager
async def open_canary() -> AsyncIterator[Canary]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    canary = Canary(listener)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(canary.run)
        try:
            yield canary
        finally:
            nursery.cancel_scope.cancel()
            await listener.aclose()


def call(method: str, params: object = (), rid: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()


def post(target: bytes, body: bytes, headers: bytes = b"Host: lasso\r\n") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (
            target,
            headers,
            len(body),
            body,
        )
    )


def hostile_methods(canary: str) -> Iterator[tuple[str, bytes]]:
    """Calls whose params name the canary; each must be refused or stay on a provider."""
    host = canary.removeprefix("http://")
    fork = {"forking": {"jsonRpcUrl": canary}}
    yield "anvil_reset fork", call("anvil_reset", [fork])
    yield "anvil_setRpcUrl", call("anvil_setRpcUrl", [canary])
    yield "hardhat_reset fork", call("hardhat_reset", [{"forking": {"jsonRpcUrl": canary}}])
    yield "admin_addPeer", call("admin_addPeer", [f"enode://{'ab' * 64}@{host}"])
    yield "admin_addTrustedPeer", call("admin_addTrustedPeer", [f"enode://{'ab' * 64}@{host}"])
    for variant in ("Anvil_reset", "ANVIL_RESET", "anvil_Reset", "aNvil_reset"):
        yield f"case {variant}", call(variant, [fork])
    yield "padded method", call(" anvil_reset", [fork])
    yield "fullwidth", call("\uff41nvil_reset", [fork])
    dup = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","method":"anvil_reset","params":[%s]}'
    yield "duplicate method key", dup % json.dumps(fork).encode()
    dup_first = (
        b'{"jsonrpc":"2.0","id":1,"method":"anvil_reset","method":"eth_blockNumber","params":[%s]}'
    )
    yield "duplicate method key, bad first", dup_first % json.dumps(fork).encode()
    yield "batch", b"[%s,%s]" % (call("eth_blockNumber"), call("anvil_reset", [fork], 2))
    yield "eth_call with a URL", call("eth_call", [{"to": canary, "data": canary}, "latest"])
    yield "eth_getLogs with a URL", call("eth_getLogs", [{"address": canary}])
    yield (
        "eth_call with a state override",
        call(
            "eth_call",
            [{"to": "0x" + "00" * 20}, "latest", {"0x" + "00" * 20: {"code": canary}}],
        ),
    )


def hostile_requests(canary: Canary) -> Iterator[tuple[str, bytes]]:
    """(name, raw request bytes) for one HTTP/1.1 request each."""
    host = f"127.0.0.1:{canary.port}".encode()
    url = canary.url.encode()
    ok = call("eth_blockNumber")
    yield "absolute-form target", post(url + b"/rpc/devnet", ok, b"Host: " + host + b"\r\n")
    yield (
        "absolute-form, lasso's own path",
        post(b"http://" + host + b"/rpc/devnet", ok, b"Host: lasso\r\n"),
    )
    yield "CONNECT to the canary", b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host)
    yield "Host names the canary", post(b"/rpc/devnet", ok, b"Host: " + host + b"\r\n")
    yield (
        "forwarding headers",
        post(
            b"/rpc/devnet",
            ok,
            b"Host: lasso\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Proto: http\r\n"
            b"X-Forwarded-For: 127.0.0.1\r\nForwarded: host=%s;proto=http\r\n"
            b"X-Original-URL: %s/rpc/devnet\r\nX-Rewrite-URL: %s\r\n" % (host, host, url, url),
        ),
    )
    for path in (
        b"/rpc/../rpc/devnet",
        b"/rpc/devnet/..%2f..%2f" + host,
        b"/rpc/devnet%2F..%2F..%2F" + host,
        b"/rpc/%2e%2e/" + host + b"/devnet",
        b"//" + host + b"/rpc/devnet",
        b"/rpc//" + host + b"/devnet",
        b"/rpc/provider/" + host + b"/devnet",
        b"/rpc/provider/http:%2F%2F" + host + b"/devnet",
        b"/rpc/provider/" + url.replace(b"/", b"%2F") + b"/devnet",
        b"/rpc/provider/n0@" + host + b"/devnet",
        b"/rpc/" + url + b"/devnet",
        b"/rpc/devnet?provider=" + url + b"&url=" + url + b"&transport=ws",
        b"/rpc/devnet\\..\\" + host,
        b"/rpc/profile/" + host + b"/devnet",
    ):
        yield f"path {path!r}", post(path, ok)
    for value in (url, host, b"n0@" + host, url + b"/n0", b"n0/../" + host):
        yield (
            f"provider header {value!r}",
            post(b"/rpc/devnet", ok, b"Host: lasso\r\nX-Lasso-Provider: %s\r\n" % value),
        )
    yield (
        "transport header with URL",
        post(b"/rpc/devnet", ok, b"Host: lasso\r\nX-Lasso-Transport: %s\r\n" % url),
    )
    for name, body in hostile_methods(canary.url):
        yield f"body {name}", post(b"/rpc/devnet", body)


async def exchange(port: int, request: bytes) -> HttpResponse | None:
    """One raw request; its answer, or None if the server closed without one."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(request)
        return await read_http_response(stream)
    except EOFError:
        return None
    finally:
        await stream.aclose()


def assert_json_answer(name: str, answer: HttpResponse | None) -> None:
    """hypercorn refuses an unparsable request line with a bare 400; everything else is ours."""
    assert answer is not None, name
    if answer.status == 400 and not answer.body:
        return
    assert answer.headers.get("content-type") == "application/json", (name, answer.status)
    reply = json.loads(answer.body)
    replies = reply if isinstance(reply, list) else [reply]
    for item in replies:
        assert "result" in item or "error" in item, (name, item)


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Front, Canary]]:
    async with open_canary() as canary, open_front() as front:
        yield front, canary


async def test_no_http_request_reaches_an_unconfigured_host(rig: tuple[Front, Canary]) -> None:
    front, canary = rig
    answers: dict[str, HttpResponse | None] = {}
    with trio.fail_after(60):
        for name, request in hostile_requests(canary):
            answers[name] = await exchange(front.port, request)
    for name, answer in answers.items():
        assert_json_answer(name, answer)
    # An absolute-form target is served as its path (RFC 9112); its authority is ignored.
    for name in ("absolute-form target", "absolute-form, lasso's own path"):
        answer = answers[name]
        assert answer is not None and answer.status == 200, name
        reply = json.loads(answer.body)
        assert reply["id"] == 1 and reply["result"].startswith("0x"), (name, reply)
    # Node-admin methods naming the canary are refused locally, whatever their case.
    for name in ("body anvil_reset fork", "body admin_addPeer", "body anvil_setRpcUrl"):
        answer = answers[name]
        assert answer is not None
        assert json.loads(answer.body)["error"]["code"] == -32601, name
    assert canary.hits == []
    await front.check_canary()
    assert canary.hits == []


async def test_no_websocket_reaches_an_unconfigured_host(rig: tuple[Front, Canary]) -> None:
    front, canary = rig
    host = f"127.0.0.1:{canary.port}"
    with trio.fail_after(60):
        for path in (
            f"/ws/rpc/provider/{host}/devnet",
            f"/ws/rpc/provider/http:%2F%2F{host}/devnet",
            f"//{host}/ws/rpc/devnet",
            "/ws/rpc/devnet/..%2f..%2f" + host,
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", front.port)
            await stream.send_all(handshake_request(host, path))
            head, _ = await read_head(stream)
            await stream.aclose()
            assert not head.startswith(b"HTTP/1.1 101"), path
        # An absolute-form handshake target is served as its path, its authority ignored.
        stream = await trio.open_tcp_stream("127.0.0.1", front.port)
        await stream.send_all(handshake_request(host, f"http://{host}/ws/rpc/devnet"))
        head, _ = await read_head(stream)
        await stream.aclose()
        assert head.startswith(b"HTTP/1.1 101"), head
        # A handshake whose Host and forwarding headers name the canary, then hostile calls.
        stream = await trio.open_tcp_stream("127.0.0.1", front.port)
        request = handshake_request(host, "/ws/rpc/devnet").replace(
            b"\r\n\r\n",
            f"\r\nX-Forwarded-Host: {host}\r\nForwarded: host={host}\r\n"
            f"X-Lasso-Provider: {canary.url}\r\n\r\n".encode(),
        )
        await stream.send_all(request)
        head, _ = await read_head(stream)
        await stream.aclose()
        assert head.startswith(b"HTTP/1.1 101") or b" 4" in head[:13], head
        ws = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
        try:
            for name, body in hostile_methods(canary.url):
                await ws.send_text(body)
                opcode, payload = await ws.message()
                assert opcode == 0x1, (name, close_reason(payload))
                reply = json.loads(payload)
                replies = reply if isinstance(reply, list) else [reply]
                assert all("result" in r or "error" in r for r in replies), (name, reply)
        finally:
            await ws.aclose()
    assert canary.hits == []
    await front.check_canary()
    assert canary.hits == []


async def test_the_canary_sees_a_node_told_to_dial_it() -> None:
    """The rig's control: with ``anvil_reset`` allowed by the operator, the node dials the
    fork URL a client gave it, and the canary sees it. This is what the deny list stops."""
    async with open_canary() as canary, open_front(allow_methods='["anvil_reset"]') as front:
        fork = {"forking": {"jsonRpcUrl": canary.url}}
        request = post(b"/rpc/provider/n0/devnet", call("anvil_reset", [fork]))
        with trio.fail_after(30):
            await exchange(front.port, request)
            await canary.hit.wait()
        assert canary.hits[0].startswith(b"POST /")
