"""The HTTP transport over real loopback sockets: keep-alive, the stale-connection race."""

from __future__ import annotations

import gc
import random
import shutil
import ssl
import subprocess
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from lasso.config import CircuitBreakerConfig, ProviderConfig
from lasso.errors import UpstreamNetworkError, UpstreamProtocolError
from lasso.upstream.http import HttpTransport
from lasso.upstream.http_httpcore import HttpcoreTransport
from lasso.upstream.provider import Provider

ANSWER = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b" % (
    len(ANSWER),
    ANSWER,
)


@pytest.fixture(params=[HttpTransport, HttpcoreTransport], ids=["lasso", "httpcore"])
def Transport(request: pytest.FixtureRequest) -> type[HttpTransport | HttpcoreTransport]:
    """Both clients a provider can use (``http_client``) pass the same tests."""
    return request.param  # type: ignore[no-any-return]


async def read_request(stream: trio.SocketStream, buffer: bytearray) -> bool:
    """Read one whole request (head and Content-Length body) off ``buffer`` and
    ``stream``; False once the client closed."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return False
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).lower()
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    del buffer[: end + 4]
    while len(buffer) < length:
        data = await stream.receive_some(65536)
        if not data:
            return False
        buffer += data
    del buffer[:length]
    return True


class FlakyServer:
    """Answers the first request on a connection, then reads the next and hangs up."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        answered = False
        async with stream:
            while await read_request(stream, buffer):
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


async def test_keep_alive_reuses_one_connection(
    Transport: type[HttpTransport | HttpcoreTransport], flaky: tuple[FlakyServer, str]
) -> None:
    _, url = flaky
    transport = Transport(url, {})
    with trio.fail_after(5):
        first = await transport.post(b"{}")
    assert (first.status, first.body) == (200, ANSWER)
    assert transport.statistics().idle_connections == 1
    await transport.aclose()


async def test_a_replay_safe_request_is_retried_once_on_a_fresh_connection(
    Transport: type[HttpTransport | HttpcoreTransport],
    flaky: tuple[FlakyServer, str],
) -> None:
    server, url = flaky
    transport = Transport(url, {})
    with trio.fail_after(5):
        await transport.post(b"{}")
        again = await transport.post(b"{}", replay_safe=True)
    assert again.body == ANSWER
    assert server.requests == 3  # the one the closing connection swallowed, then the retry
    assert transport.statistics().connects == 2
    await transport.aclose()


async def test_a_non_replayable_request_is_never_sent_twice(
    Transport: type[HttpTransport | HttpcoreTransport], flaky: tuple[FlakyServer, str]
) -> None:
    server, url = flaky
    transport = Transport(url, {})
    with trio.fail_after(5):
        await transport.post(b"{}")
        with pytest.raises(UpstreamNetworkError) as info:
            await transport.post(b"{}", replay_safe=False)
    assert not info.value.never_sent
    assert server.requests == 2  # the server read it once; no second copy went out
    await transport.aclose()


async def test_connection_refused_is_never_sent(
    Transport: type[HttpTransport | HttpcoreTransport],
) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = Transport(f"http://127.0.0.1:{port}/", {})
    with trio.fail_after(5), pytest.raises(UpstreamNetworkError) as info:
        await transport.post(b"{}")
    assert info.value.never_sent


async def test_a_post_cancelled_mid_body_leaves_nothing_to_the_garbage_collector(
    Transport: type[HttpTransport | HttpcoreTransport],
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
    transport = Transport(url, {})

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


async def serve_answers(nursery: trio.Nursery, answers: list[bytes]) -> tuple[str, list[int]]:
    """A server that answers each request it reads with the next of ``answers``;
    returns its URL and the number of connections it accepted (a one-item list)."""
    accepted = [0]

    async def handle(stream: trio.SocketStream) -> None:
        accepted[0] += 1
        buffer = bytearray()
        async with stream:
            while answers and await read_request(stream, buffer):
                answer = answers.pop(0)
                await stream.send_all(answer)
                if b"connection: close" in answer.lower():
                    return

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/", accepted


CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"10\r\n" + ANSWER[:16] + b"\r\n%x\r\n" % (len(ANSWER) - 16) + ANSWER[16:] + b"\r\n0\r\n\r\n"
)
CLOSING = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\nconnection: close\r\n\r\n"


async def test_chunked_and_connection_close_answers(
    Transport: type[HttpTransport | HttpcoreTransport], nursery: trio.Nursery
) -> None:
    url, accepted = await serve_answers(nursery, [CHUNKED, CLOSING, RESPONSE])
    transport = Transport(url, {})
    with trio.fail_after(5):
        chunked = await transport.post(b"{}")
        closing = await transport.post(b"{}")
        after = await transport.post(b"{}")
    assert (chunked.status, chunked.body) == (200, ANSWER)
    assert (closing.status, closing.retry_after, closing.body) == (429, "3", b"")
    assert after.body == ANSWER
    assert accepted == [2]  # the close was honoured: the third request on a new connection
    stats = transport.statistics()
    assert (stats.connects, stats.open_connections, stats.idle_connections) == (2, 1, 1)
    await transport.aclose()


async def test_a_body_cut_short_is_a_protocol_error(
    Transport: type[HttpTransport | HttpcoreTransport], nursery: trio.Nursery
) -> None:
    url, _ = await serve_answers(nursery, [RESPONSE[:-5]])
    transport = Transport(url, {})
    with trio.fail_after(5), pytest.raises(UpstreamProtocolError, match="complete message body"):
        await transport.post(b"{}")  # the server sends part of the body, then hangs up
    assert transport.statistics().open_connections == 0


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.slow
async def test_https_keeps_one_tls_connection_alive(
    Transport: type[HttpTransport | HttpcoreTransport],
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    answered = []

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer or not buffer.endswith(b"{}"):
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                buffer = b""
                answered.append(1)
                await stream.send_all(RESPONSE)

    listeners = await nursery.start(
        partial(trio.serve_ssl_over_tcp, handle, 0, server_context, host="127.0.0.1")
    )
    port = listeners[0].transport_listener.socket.getsockname()[1]
    client_context = ssl.create_default_context(cafile=str(cert))
    transport = Transport(f"https://127.0.0.1:{port}/", {}, ssl_context=client_context)
    with trio.fail_after(5):
        first = await transport.post(b"{}")
        second = await transport.post(b"{}")
    assert (first.body, second.body, len(answered)) == (ANSWER, ANSWER, 2)
    assert transport.statistics().connects == 1
    await transport.aclose()
    assert transport.statistics().open_connections == 0


async def test_an_idle_connection_the_server_closed_is_not_reused(
    Transport: type[HttpTransport | HttpcoreTransport], nursery: trio.Nursery
) -> None:
    closed = trio.Event()
    requests = []

    async def answer_once(stream: trio.SocketStream) -> None:
        async with stream:
            buffer = b""
            while not buffer.endswith(b"{}"):
                buffer += await stream.receive_some(65536)
            requests.append(buffer)
            await stream.send_all(RESPONSE)
        closed.set()  # the connection is idle in the client's pool when this closes it

    listeners = await nursery.start(partial(trio.serve_tcp, answer_once, 0, host="127.0.0.1"))
    transport = Transport(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/", {})
    with trio.fail_after(5):
        await transport.post(b"{}")
        await closed.wait()
        again = await transport.post(b"{}", replay_safe=False)  # no retry could save it
    assert again.body == ANSWER
    assert (len(requests), transport.statistics().connects) == (2, 2)
    assert transport.statistics().failures == 0
    await transport.aclose()


@pytest.mark.slow
async def test_https_answer_ended_by_a_close_without_close_notify(
    Transport: type[HttpTransport | HttpcoreTransport],
    nursery: trio.Nursery,
    tls_files: tuple[Path, Path],
) -> None:
    """Many servers end a TLS connection without a close_notify; for an answer framed
    by the close, that is its end (as httpcore reads it), not a broken connection."""
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
        buffer = b""
        while not buffer.endswith(b"{}"):
            buffer += await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + ANSWER)
        await stream.transport_stream.aclose()  # TCP close, no TLS close_notify

    listeners = await nursery.start(
        partial(trio.serve_ssl_over_tcp, handle, 0, server_context, host="127.0.0.1")
    )
    port = listeners[0].transport_listener.socket.getsockname()[1]
    client_context = ssl.create_default_context(cafile=str(cert))
    transport = Transport(f"https://127.0.0.1:{port}/", {}, ssl_context=client_context)
    with trio.fail_after(5):
        answer = await transport.post(b"{}")
    assert (answer.status, answer.body) == (200, ANSWER)
    assert transport.statistics().open_connections == 0


def test_a_provider_uses_the_client_its_config_names() -> None:
    def made(**kw: object) -> object:
        config = ProviderConfig(id="p", url="http://127.0.0.1:1/", **kw)  # type: ignore[arg-type]
        return Provider(config, order=0, breaker=CircuitBreakerConfig(), rng=random.Random(1)).http

    assert type(made()) is HttpTransport
    assert type(made(http_client="httpcore")) is HttpcoreTransport
