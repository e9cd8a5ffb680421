"""The HTTP transport over real loopback sockets: keep-alive, the stale-connection race."""

from __future__ import annotations

import gc
from functools import partial

import pytest
import trio
import trio.testing

from lasso.errors import UpstreamNetworkError
from lasso.upstream.http import HttpTransport

ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (
    len(ANSWER),
    ANSWER,
)


class FlakyServer:
    """Answers the first request on a connection, then reads the next and hangs up."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        answered = False
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                buffer = buffer[length:]
                self.requests += 1
                if answered:
                    return  # read it whole, then close without answering
                await stream.send_all(RESPONSE)
                answered = True


@pytest.fixture
async def flaky(nursery: trio.Nursery) -> tuple[FlakyServer, str]:
    server = FlakyServer()
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
    return server, f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"


async def test_keep_alive_reuses_one_connection(flaky: tuple[FlakyServer, str]) -> None:
    _, url = flaky
    transport = HttpTransport(url, {})
    with trio.fail_after(5):
        first = await transport.post(b"{}")
    assert (first.status, first.body) == (200, ANSWER)
    assert transport.statistics().idle_connections == 1
    await transport.aclose()


async def test_a_replay_safe_request_is_retried_once_on_a_fresh_connection(
    flaky: tuple[FlakyServer, str],
) -> None:
    server, url = flaky
    transport = HttpTransport(url, {})
    with trio.fail_after(5):
        await transport.post(b"{}")
        again = await transport.post(b"{}", replay_safe=True)
    assert again.body == ANSWER
    assert server.requests == 3  # the one the closing connection swallowed, then the retry
    assert transport.statistics().connects == 2
    await transport.aclose()


async def test_a_non_replayable_request_is_never_sent_twice(flaky: tuple[FlakyServer, str]) -> None:
    server, url = flaky
    transport = HttpTransport(url, {})
    with trio.fail_after(5):
        await transport.post(b"{}")
        with pytest.raises(UpstreamNetworkError) as info:
            await transport.post(b"{}", replay_safe=False)
    assert not info.value.never_sent
    assert server.requests == 2  # the server read it once; no second copy went out
    await transport.aclose()


async def test_connection_refused_is_never_sent() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}/", {})
    with trio.fail_after(5), pytest.raises(UpstreamNetworkError) as info:
        await transport.post(b"{}")
    assert info.value.never_sent


async def test_a_post_cancelled_mid_body_leaves_nothing_to_the_garbage_collector(
    nursery: trio.Nursery,
) -> None:
    """A body the server never reads blocks in send; cancelling it must finalise httpcore's
    request-body iteration at once (an async generator left to the GC warns, which
    filterwarnings = error turns into a failure somewhere else, later)."""
    accepted = trio.Event()

    async def never_reads(stream: trio.SocketStream) -> None:
        accepted.set()
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, never_reads, 0, host="127.0.0.1"))
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
    transport = HttpTransport(url, {})

    async def post() -> None:
        await transport.post(b"x" * 32_000_000)

    async with trio.open_nursery() as inner:
        inner.start_soon(post)
        await accepted.wait()
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        inner.cancel_scope.cancel()
    gc.collect()
    await trio.testing.wait_all_tasks_blocked()
    assert transport.statistics().open_connections == 0
