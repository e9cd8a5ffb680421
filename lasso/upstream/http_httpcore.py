"""The upstream HTTP/1.1 client on httpcore: a provider's ``http_client = "httpcore"``.

The default client is Lasso's own (:mod:`lasso.upstream.http`), about five times
cheaper per request. This is the one it replaced, kept whole as the fallback an
operator can choose per provider without a new release: a provider whose HTTP
server the own client mishandles is served by the library of record while the
bug is fixed. Both pass the same transport tests (tests/upstream/test_http_transport.py).

It drives httpcore ``AsyncHTTP11Connection``s from its own LIFO idle list and
checks only the connection it is about to reuse for expiry. Timeouts are not
parameters here: the caller's cancel scope bounds every call. A cancelled call
closes its connection instead of returning it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable
from typing import cast

import httpcore
import trio
from httpcore._backends.trio import TrioBackend

from lasso.errors import UpstreamNetworkError, UpstreamProtocolError
from lasso.upstream.http import HttpResponse, IdlePool


class HttpcoreTransport(IdlePool[httpcore.AsyncHTTP11Connection]):
    """POSTs bodies to one URL over reused keep-alive connections."""

    def _prepare(self) -> None:
        where = self._where
        scheme = b"https" if where.tls else b"http"
        self._origin = httpcore.Origin(scheme, self._host.encode(), self._port)
        self._url = httpcore.URL(
            scheme=scheme, host=self._host.encode(), port=self._port, target=where.target.encode()
        )
        self._headers = [(k.encode(), v.encode()) for k, v in where.headers.items()]
        self._backend = TrioBackend()

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        """Send one POST and read the whole answer.

        A kept-alive connection the server closed as we reused it fails with
        "disconnected without sending a response"; for a replay-safe request one
        retry on a fresh connection hides that race. A non-replayable request is
        never retried here: the server may have read it before closing.
        """
        self._requests += 1
        try:
            async with self._limiter:
                conn, reused = await self._checkout()
                try:
                    return await self._exchange(conn, body)
                except httpcore.RemoteProtocolError:
                    if not (reused and replay_safe):
                        raise
                try:
                    fresh = await self._connect()
                except UpstreamNetworkError as exc:
                    exc.never_sent = False  # the first exchange may have reached it
                    raise
                return await self._exchange(fresh, body)
        except (httpcore.NetworkError, httpcore.TimeoutException, OSError) as exc:
            self._failures += 1
            raise UpstreamNetworkError(
                f"{type(exc).__name__}: {exc}", provider_id=self._provider_id
            ) from exc
        except httpcore.RemoteProtocolError as exc:
            self._failures += 1
            if "disconnected" not in str(exc):
                raise UpstreamProtocolError(
                    f"HTTP protocol error: {exc}", provider_id=self._provider_id
                ) from exc
            raise UpstreamNetworkError(
                f"connection closed: {exc}", provider_id=self._provider_id
            ) from exc
        except httpcore.ProtocolError as exc:
            self._failures += 1
            raise UpstreamProtocolError(
                f"HTTP protocol error: {exc}", provider_id=self._provider_id
            ) from exc

    async def _exchange(self, conn: httpcore.AsyncHTTP11Connection, body: bytes) -> HttpResponse:
        headers = [*self._headers, (b"content-length", b"%d" % len(body))]
        request = httpcore.Request(b"POST", self._url, headers=headers, content=_Body(body))
        try:
            response = await conn.handle_async_request(request)
            # aclosing: a read cut short by cancellation still finalises httpcore's
            # body generator here, not later in the garbage collector.
            stream = cast(AsyncIterable[bytes], response.stream)
            async with contextlib.aclosing(aiter(stream)) as chunks:  # type: ignore[type-var]
                content = b"".join([chunk async for chunk in chunks])
            await response.aclose()
        except BaseException:
            await self._discard(conn)
            raise
        self._checkin(conn)
        return HttpResponse(response.status, content, _retry_after(response.headers))

    async def _checkout(self) -> tuple[httpcore.AsyncHTTP11Connection, bool]:
        while self._idle:
            conn = self._idle.pop()
            if conn.is_idle() and not conn.has_expired():
                return conn, True
            await self._discard(conn)
        return await self._connect(), False

    async def _connect(self) -> httpcore.AsyncHTTP11Connection:
        try:
            stream = await self._backend.connect_tcp(self._host, self._port)
            if self._ssl is not None:
                try:
                    stream = await stream.start_tls(self._ssl, server_hostname=self._host)
                except BaseException:  # cancelled or failed mid-handshake: no leaked socket
                    with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                        await stream.aclose()
                    raise
        except (httpcore.NetworkError, httpcore.TimeoutException, OSError) as exc:
            raise self._connect_failed(exc) from exc
        self._connected()
        return httpcore.AsyncHTTP11Connection(
            self._origin, stream, keepalive_expiry=self._keepalive_expiry_s
        )

    def _checkin(self, conn: httpcore.AsyncHTTP11Connection) -> None:
        if conn.is_idle():
            self._idle.append(conn)
        else:
            self._open -= 1

    async def _discard(self, conn: httpcore.AsyncHTTP11Connection) -> None:
        self._open -= 1
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await conn.aclose()

    def _reusable(self, conn: httpcore.AsyncHTTP11Connection, now: float) -> bool:
        return conn.is_idle() and not conn.has_expired()


class _Body:
    """A request body httpcore iterates without an async generator.

    httpcore wraps ``bytes`` content in a ``ByteStream`` whose ``__aiter__`` is an
    async generator; a send cancelled mid-body (a peer that stops reading) leaves
    that generator to the garbage collector, which warns at some later, unrelated
    point. A plain iterator object has nothing to finalise.
    """

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        body, self._body = self._body, None
        if body is None:
            raise StopAsyncIteration
        return body


def _retry_after(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"retry-after":
            return value.decode("latin-1")
    return None
