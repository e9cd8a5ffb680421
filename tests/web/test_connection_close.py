"""A response that closes the connection (an HTTP/1.0 client, ``Connection: close``) reaches
the client's EOF from the quart routes too, not only from the raw ``/rpc`` path: hypercorn
closes from inside the final body's send and quart-trio cancels that task on the disconnect
the close causes; the half-close must survive that cancel (lasso/web/server.py ``_close``)."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from lasso.config import parse_settings
from lasso.daemon import serve

pytestmark = pytest.mark.slow

SETTINGS = (
    '[chains.devnet]\nchain_id = 31337\nproviders = [ { id = "n0", url = "http://127.0.0.1:1" } ]\n'
)


@pytest.mark.parametrize("path", ["/health", "/dashboard/snapshot.json", "/api/chains"])
async def test_an_http_1_0_answer_ends_with_eof(path: str) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        settings = parse_settings(SETTINGS, env={})
        binds = await nursery.start(
            partial(serve, settings, host="127.0.0.1", port=0, shutdown=shutdown)
        )
        host, port = binds[0].removeprefix("http://").rsplit(":", 1)
        with trio.fail_after(5):  # before: no EOF until the client gave up
            sock = await trio.open_tcp_stream(host, int(port))
            await sock.send_all(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            answer = b""
            while chunk := await sock.receive_some(65536):
                answer += chunk
            await sock.aclose()
        assert answer.startswith(b"HTTP/1.1 200 ")
        shutdown.set()


@pytest.mark.parametrize("path", ["/health", "/rpc/devnet"])
async def test_an_idle_keep_alive_connection_does_not_hold_the_shutdown(path: str) -> None:
    """A client that keeps its connection open after an answer (every HTTP/1.1 client
    does) is idle: the drain closes it at once instead of waiting out the grace period."""
    settings = parse_settings(SETTINGS + "[server]\nshutdown_grace_ms = 30000\n", env={})
    shutdown = trio.Event()
    with trio.fail_after(10):  # before: the 30 s grace
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(serve, settings, host="127.0.0.1", port=0, shutdown=shutdown)
            )
            host, port = binds[0].removeprefix("http://").rsplit(":", 1)
            sock = await trio.open_tcp_stream(host, int(port))
            body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
            method = "POST" if path.startswith("/rpc") else "GET"
            await sock.send_all(
                f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body) if method == 'POST' else 0}\r\n\r\n".encode()
                + (body if method == "POST" else b"")
            )
            answer = await read_answer(sock)
            assert answer.startswith(b"HTTP/1.1 200 ")
            shutdown.set()  # the connection is idle now, kept alive by the client
        assert await sock.receive_some(65536) == b""  # closed by the server
        await sock.aclose()


async def read_answer(sock: trio.SocketStream) -> bytes:
    """One whole HTTP/1.1 answer with a Content-Length (the connection stays open)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await sock.receive_some(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await sock.receive_some(65536)
    return head + b"\r\n\r\n" + body
