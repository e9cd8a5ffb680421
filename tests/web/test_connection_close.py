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
