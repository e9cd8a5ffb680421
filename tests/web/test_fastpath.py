"""The HTTP/1.1 fast path (lasso/web/rawhttp.py) through a real socket: the same answers
as hypercorn's path, byte for byte; pipelining, split bodies, hand-over to hypercorn,
``Connection: close``, the keep-alive timer, and a client's hang-up cancelling its
upstream call."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

import lasso.daemon
from lasso.config import parse_settings
from lasso.daemon import serve
from lasso.web import rawhttp

pytestmark = pytest.mark.slow

CALL = b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}'
HANG = b'{"jsonrpc":"2.0","id":8,"method":"eth_getBalance","params":["0x%s","latest"]}' % (
    b"11" * 20
)


RESULTS = {"eth_blockNumber": b'"0x2a"', "eth_chainId": b'"0x7a69"'}


class Upstream:
    """A node on a raw socket: every call answered at once, but ``eth_getBalance`` never.
    ``closed`` is set when the gateway drops a connection it sent an unanswered call on."""

    def __init__(self) -> None:
        self.port = 0
        self.hanging = trio.Event()
        self.closed = trio.Event()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        buf = b""
        try:
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                buf += chunk
                while (end := buf.find(b"\r\n\r\n")) >= 0:
                    length = int(re.search(rb"(?i)content-length: *(\d+)", buf[:end])[1])  # type: ignore[index]
                    if len(buf) < end + 4 + length:
                        break
                    body, buf = buf[end + 4 : end + 4 + length], buf[end + 4 + length :]
                    call = json.loads(body)
                    if call["method"] == "eth_getBalance":
                        self.hanging.set()
                        try:
                            while await stream.receive_some(65536):
                                pass
                        finally:
                            self.closed.set()
                        return
                    result = RESULTS.get(call["method"], b"null")
                    answer = b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (
                        json.dumps(call["id"]).encode(),
                        result,
                    )
                    await stream.send_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
        except trio.BrokenResourceError:
            self.closed.set()


OPEN: list[trio.SocketStream] = []


async def connect(port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    OPEN.append(stream)
    return stream


@asynccontextmanager
async def gateway(extra: str = "") -> AsyncIterator[tuple[int, Upstream]]:
    upstream = Upstream()
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(upstream.serve)
        toml = (
            "[chains.devnet]\nchain_id = 31337\n"
            f'providers = [ {{ id = "n0", url = "http://127.0.0.1:{upstream.port}" }} ]\n'
            "[server]\nmax_body_bytes = 4096\n" + extra
        )
        binds = await nursery.start(
            partial(
                serve, parse_settings(toml, env={}), host="127.0.0.1", port=0, shutdown=shutdown
            )
        )
        try:
            yield int(binds[0].rsplit(":", 1)[1]), upstream
        finally:
            while OPEN:
                await OPEN.pop().aclose()
        shutdown.set()
        nursery.cancel_scope.cancel()


def post(body: bytes, path: bytes = b"/rpc/devnet", extra: bytes = b"") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
        b"Content-Length: %d\r\n\r\n%s" % (path, extra, len(body), body)
    )


async def read_answer(stream: trio.SocketStream, buf: bytearray) -> bytes:
    """One whole HTTP answer (head and Content-Length body) from ``stream``."""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError(bytes(buf))
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    length = int(re.search(rb"content-length: (\d+)", bytes(buf[:end]))[1])  # type: ignore[index]
    while len(buf) < end + length:
        buf += await stream.receive_some(65536)
    answer = bytes(buf[: end + length])
    del buf[: end + length]
    return answer


#: What differs between two answers to the same call: the request id the gateway makes,
#: measured latencies, and so the body length of a ``lasso_meta`` answer.
VOLATILE = re.compile(
    rb"\r\n(?:x-lasso-request-id|x-request-id|content-length): [\w-]+(?=\r\n)"
    rb"|\"request_id\":\"[\w-]+\"|\"\w*latency\w*\":[\d.]+|\"\w+_ms\":[\d.]+"
)


def undated(answer: bytes) -> bytes:
    return re.sub(rb"\r\ndate: [^\r]*", b"", answer)


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The targets the fast path answered (proof that it, not hypercorn, did)."""
    seen: list[bytes] = []
    original = rawhttp.FastHTTP._answer

    async def counting(self: rawhttp.FastHTTP, head: Any) -> bool:
        seen.append(head.target)
        return await original(self, head)

    monkeypatch.setattr(rawhttp.FastHTTP, "_answer", counting)
    return seen


CASES = [
    post(CALL),
    post(
        b'[{"jsonrpc":"2.0","id":"a","method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}]'
    ),
    post(b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"'),  # -32700
    post(b'{"jsonrpc":"2.0","id":1,"method":"nope_nope","params":[]}'),
    post(CALL, path=b"/rpc/nochain"),
    post(CALL, path=b"/rpc/devnet?include_meta=body"),
    post(CALL, extra=b"X-Request-Id: req-1\r\n"),
    post(b"x" * 5000),  # 413: over max_body_bytes, and the connection closes
]


async def test_the_fast_path_answers_the_bytes_hypercorn_does(answered: list[bytes]) -> None:
    async with gateway() as (port, _):
        fast: list[bytes] = []
        slow: list[bytes] = []
        raw: list[bytes] = []
        for case in CASES:
            for route, out in ((b"", fast), (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", slow)):
                with trio.fail_after(10):
                    stream = await connect(port)
                    buf = bytearray()
                    if route:  # a declined first request hands the connection to hypercorn
                        await stream.send_all(route)
                        await read_answer(stream, buf)
                    await stream.send_all(case)
                    answer = await read_answer(stream, buf)
                    await stream.aclose()
                out.append(VOLATILE.sub(b"", undated(answer)))
                raw.append(answer)
        assert len(answered) == len(CASES)  # every fast case was the fast path's
        for case, a, b in zip(CASES, fast, slow, strict=True):
            assert a == b, case
        assert fast[0].endswith(b'{"jsonrpc":"2.0","id":7,"result":"0x2a"}')
        assert b"\r\nx-request-id: req-1\r\n" in raw[12]
        assert b"\r\nx-request-id: req-1\r\n" in raw[13]  # echoed on both paths
        assert fast[-1].startswith(b"HTTP/1.1 413 ")


async def test_pipelined_requests_are_answered_in_order(answered: list[bytes]) -> None:
    async with gateway() as (port, _):
        stream = await connect(port)
        bodies = [CALL.replace(b'"id":7', b'"id":%d' % i) for i in range(5)]
        await stream.send_all(b"".join(post(body) for body in bodies))
        buf = bytearray()
        with trio.fail_after(10):
            for i in range(5):
                answer = await read_answer(stream, buf)
                assert answer.endswith(b'{"jsonrpc":"2.0","id":%d,"result":"0x2a"}' % i)
        assert len(answered) == 5


async def test_a_split_head_and_body_are_put_together(answered: list[bytes]) -> None:
    async with gateway() as (port, _):
        stream = await connect(port)
        whole = post(CALL)
        buf = bytearray()
        with trio.fail_after(10):
            for start in range(0, len(whole), 17):
                await stream.send_all(whole[start : start + 17])
                await trio.lowlevel.checkpoint()  # the server may read each piece alone
            answer = await read_answer(stream, buf)
        assert answer.endswith(b'"result":"0x2a"}') and len(answered) == 1


async def test_other_routes_hand_the_connection_to_hypercorn(answered: list[bytes]) -> None:
    async with gateway() as (port, _):
        stream = await connect(port)
        buf = bytearray()
        with trio.fail_after(10):
            await stream.send_all(post(CALL))
            assert (await read_answer(stream, buf)).startswith(b"HTTP/1.1 200 ")
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + post(CALL))
            health = await read_answer(stream, buf)
            assert health.startswith(b"HTTP/1.1 200 ") and b'"status"' in health
            assert (await read_answer(stream, buf)).endswith(b'"result":"0x2a"}')
        assert len(answered) == 1  # the last call was hypercorn's: the connection is its


async def test_connection_close_is_honoured() -> None:
    async with gateway() as (port, _):
        stream = await connect(port)
        await stream.send_all(post(CALL, extra=b"Connection: close\r\n"))
        data = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
        assert b"\r\nConnection: close\r\n" in data and data.endswith(b'"result":"0x2a"}')


async def test_an_idle_kept_alive_connection_is_closed_after_keep_alive_timeout(
    monkeypatch: pytest.MonkeyPatch, answered: list[bytes]
) -> None:
    original = lasso.daemon.hypercorn_config

    def short(*args: Any) -> Any:
        config = original(*args)
        config.keep_alive_timeout = 0.3
        return config

    monkeypatch.setattr(lasso.daemon, "hypercorn_config", short)
    async with gateway() as (port, _):
        stream = await connect(port)
        await stream.send_all(post(CALL))
        buf = bytearray()
        start = trio.current_time()
        with trio.fail_after(10):
            await read_answer(stream, buf)
            assert await stream.receive_some(100) == b""  # EOF: closed by the server
        assert trio.current_time() - start >= 0.3 and len(answered) == 1


@pytest.mark.parametrize("fast", [True, False])
async def test_a_client_hang_up_cancels_its_upstream_call(
    answered: list[bytes], fast: bool
) -> None:
    async with gateway("" if fast else "http_fast_path = false\n") as (port, upstream):
        stream = await connect(port)
        await stream.send_all(post(HANG))
        with trio.fail_after(10):
            await upstream.hanging.wait()
        await stream.aclose()  # the client gives up
        with trio.fail_after(5):  # before: held until the upstream deadline (30 s)
            await upstream.closed.wait()
        assert len(answered) == (1 if fast else 0)
        # The gateway still serves.
        stream = await connect(port)
        await stream.send_all(post(CALL))
        with trio.fail_after(10):
            assert (await read_answer(stream, bytearray())).endswith(b'"result":"0x2a"}')
