"""One pooled HTTP/1.1 keep-alive client per provider.

Hand-rolled on trio streams over the sans-IO :mod:`lasso.core.http1_client`: the request
head is encoded once per transport, and each POST is one ``send_all`` (head and
body together) and the reads its response takes. History: ``httpx.AsyncClient``
cost 456-474 µs of CPU per request against an instant upstream (``bench/clients.py``),
httpcore's own pool 283 / 574-695 µs (it polls every pooled socket per request),
httpcore ``AsyncHTTP11Connection`` driven from our own LIFO idle list 214-256 / 160
µs; a profile of the gateway then still put about a fifth of its CPU per request
inside httpcore + h11 (two sends per request, event objects, header validation each
time), which this module does not spend. Only the connection about to be reused is
checked (expiry, and a zero-timeout poll: did the server close it?).

Timeouts are not parameters here: the caller's cancel scope bounds every
call. A cancelled call closes its connection instead of returning it, so a
half-read response never leaks into the next request.
"""

from __future__ import annotations

import select
import ssl
import time
from collections.abc import Mapping
from typing import Generic, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec
import trio

from lasso.core.http1_client import Disconnected, ProtocolError, RequestHead, ResponseReader
from lasso.core.mask import mask_url
from lasso.errors import UpstreamNetworkError, UpstreamProtocolError

_DEFAULT_PORTS = {"http": 80, "https": 443}
C = TypeVar("C")
#: Bodies up to this size go out in the same send as the head (one copy of the body).
_JOIN_BODY_BYTES = 64 * 1024
_RECEIVE_BYTES = 256 * 1024


class HttpResponse(msgspec.Struct, frozen=True):
    status: int
    body: bytes | bytearray  # a long one: the buffer it was read into (never joined or copied)
    retry_after: str | None


class HttpStatistics(msgspec.Struct, frozen=True):
    requests: int
    failures: int
    open_connections: int
    idle_connections: int
    connects: int


class PostTransport(Protocol):
    """What a provider needs from an HTTP transport; fakes implement it too."""

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse: ...

    async def reap_idle(self) -> int: ...

    async def aclose(self) -> None: ...

    def statistics(self) -> HttpStatistics: ...


def client_tls_context() -> ssl.SSLContext:
    """The client TLS context both HTTP clients use: httpx's defaults, HTTP/1.1 only."""
    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class Endpoint(NamedTuple):
    """Where an HTTP transport posts, and the headers it sends, from a provider's URL."""

    host: str
    port: int
    tls: bool
    target: str  # path and query
    headers: dict[str, str]  # lower-case names: host, content-type, accept, user-agent, extra

    @classmethod
    def parse(cls, url: str, headers: Mapping[str, str]) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {mask_url(url)!r}")
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        shown = f"[{host}]" if ":" in host else host  # an IPv6 literal
        base = {"host": shown if parts.port is None else f"{shown}:{port}"}
        base |= {"content-type": "application/json", "accept": "application/json"}
        base |= {"user-agent": "lasso"} | {k.lower(): v for k, v in headers.items()}
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(host, port, parts.scheme == "https", target, base)


class _Connection:
    """One keep-alive connection: its stream and when it expires."""

    __slots__ = ("_poller", "expires_at", "fileno", "sock", "stream")

    def __init__(self, stream: trio.abc.Stream, sock: trio.SocketStream) -> None:
        self.stream = stream
        self.sock = sock
        self.fileno = sock.socket.fileno()
        self.expires_at = 0.0
        self._poller = select.poll()  # registered once: a reuse costs one poll(0)
        self._poller.register(self.fileno, select.POLLIN)

    def reusable(self, now: float) -> bool:
        """Not expired, and the server did not close it (nothing readable while idle)."""
        if now >= self.expires_at:
            return False
        return not self._poller.poll(0)


class _Retry(Exception):
    """A reused connection was closed before any byte of the answer: send again."""


class IdlePool(Generic[C]):
    """What both HTTP clients share: where they post, the TLS context, the idle list, the
    counters and their upkeep."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        provider_id: str = "",
        max_connections: int = 256,
        keepalive_expiry_s: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._where = where = Endpoint.parse(url, headers)
        self._provider_id = provider_id
        self._host, self._port, self._tls = where.host, where.port, where.tls
        self._keepalive_expiry_s = keepalive_expiry_s
        self._limiter = trio.CapacityLimiter(max_connections)
        self._ssl = (ssl_context or client_tls_context()) if self._tls else None
        self._idle: list[C] = []
        self._open = 0
        self._requests = self._failures = self._connects = 0
        self._prepare()

    def _prepare(self) -> None:
        """The client's own set-up, once the shared part is done."""

    def _connected(self) -> None:
        self._open += 1
        self._connects += 1

    def _connect_failed(self, exc: BaseException) -> UpstreamNetworkError:
        """Counted as a failure; the error to raise: never sent, so always safe to retry."""
        self._failures += 1
        return UpstreamNetworkError(
            f"connect to {self._host}:{self._port} failed: {exc}",
            provider_id=self._provider_id,
            never_sent=True,
        )

    def _reusable(self, conn: C, now: float) -> bool:
        raise NotImplementedError

    async def _discard(self, conn: C) -> None:
        raise NotImplementedError

    async def reap_idle(self) -> int:
        """Close idle connections that expired or were closed by the server."""
        now = time.monotonic()
        keep: list[C] = []
        stale: list[C] = []
        for conn in self._idle:
            (keep if self._reusable(conn, now) else stale).append(conn)
        self._idle = keep
        for conn in stale:
            await self._discard(conn)
        return len(stale)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._discard(conn)

    def statistics(self) -> HttpStatistics:
        return HttpStatistics(
            requests=self._requests,
            failures=self._failures,
            open_connections=self._open,
            idle_connections=len(self._idle),
            connects=self._connects,
        )


class HttpTransport(IdlePool[_Connection]):
    """POSTs bodies to one URL over reused keep-alive connections."""

    def _prepare(self) -> None:
        self._head = RequestHead(self._where.target, list(self._where.headers.items()))

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        """Send one POST and read the whole answer.

        A kept-alive connection the server closed as we reused it fails before any
        byte of the answer; for a replay-safe request one retry on a fresh
        connection hides that race. A non-replayable request is never retried
        here: the server may have read it before closing.
        """
        self._requests += 1
        limiter = self._limiter
        try:
            limiter.acquire_nowait()  # no task switch when a slot is free (the usual case)
        except trio.WouldBlock:
            await limiter.acquire()
        try:
            conn = self._checkout()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                return await self._exchange(conn, body, retry=reused and replay_safe)
            except _Retry:
                pass
            try:
                fresh = await self._connect()
            except UpstreamNetworkError as exc:
                exc.never_sent = False  # the first exchange may have reached it
                raise
            return await self._exchange(fresh, body, retry=False)
        finally:
            limiter.release()

    async def _exchange(self, conn: _Connection, body: bytes, *, retry: bool) -> HttpResponse:
        head = self._head.encode(len(body))
        reader = ResponseReader()
        stream = conn.stream
        try:
            try:
                if len(body) <= _JOIN_BODY_BYTES:
                    await stream.send_all(head + body)
                else:
                    await stream.send_all(head)
                    await stream.send_all(body)
            except (trio.BrokenResourceError, OSError) as exc:
                if retry:  # the server closed the kept-alive connection as we reused it
                    raise _Retry from exc
                raise self._network_error(f"{type(exc).__name__}: {exc}") from exc
            try:
                plain = conn.sock if stream is conn.sock else None  # no TLS between
                while True:
                    into = None if plain is None else reader.buffer()
                    if into is not None and plain is not None:  # a long body: no joining
                        count = await plain.socket.recv_into(into)
                        response = reader.wrote(count) if count else reader.eof()
                        into.release()
                    else:
                        data = bytes(await stream.receive_some(_RECEIVE_BYTES))  # bytes: no copy
                        response = reader.feed(data) if data else reader.eof()
                    if response is not None:
                        break
            except (trio.BrokenResourceError, OSError) as exc:  # a reset: lost mid-request
                raise self._network_error(f"{type(exc).__name__}: {exc}") from exc
            except Disconnected as exc:
                if exc.started:
                    raise self._protocol_error(exc) from exc
                if retry:  # closed as we reused it, before any byte of an answer
                    raise _Retry from exc
                raise self._network_error(f"connection closed: {exc}") from exc
            except ProtocolError as exc:
                raise self._protocol_error(exc) from exc
        except BaseException:
            await self._discard(conn)
            raise
        if response.keep_alive:
            conn.expires_at = time.monotonic() + self._keepalive_expiry_s
            self._idle.append(conn)
        else:
            await self._discard(conn)
        return HttpResponse(response.status, response.body, response.retry_after)

    def _network_error(self, message: str) -> UpstreamNetworkError:
        self._failures += 1
        return UpstreamNetworkError(message, provider_id=self._provider_id)

    def _protocol_error(self, exc: Exception) -> UpstreamProtocolError:
        self._failures += 1
        return UpstreamProtocolError(f"HTTP protocol error: {exc}", provider_id=self._provider_id)

    def _checkout(self) -> _Connection | None:
        """The most recently used idle connection still good, else None (the stale closed)."""
        idle = self._idle
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.reusable(now):
                return conn
            self._close_now(conn)
        return None

    async def _connect(self) -> _Connection:
        stream: trio.abc.Stream
        try:
            sock = await trio.open_tcp_stream(self._host, self._port)
            stream = sock
            if self._ssl is not None:
                # https_compatible (as httpcore does): many servers close without a
                # close_notify, which is then an end of stream, not a broken one.
                tls = trio.SSLStream(
                    sock, self._ssl, server_hostname=self._host, https_compatible=True
                )
                try:
                    await tls.do_handshake()
                except BaseException:  # cancelled or failed mid-handshake: no leaked socket
                    await trio.aclose_forcefully(sock)
                    raise
                stream = tls
        except (OSError, trio.BrokenResourceError) as exc:
            raise self._connect_failed(exc) from exc
        self._connected()
        return _Connection(stream, sock)

    def _close_now(self, conn: _Connection) -> None:
        """Close an idle connection at once (no TLS close_notify: the peer is gone or idle)."""
        self._open -= 1
        conn.sock.socket.close()

    async def _discard(self, conn: _Connection) -> None:
        self._open -= 1
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await conn.stream.aclose()

    def _reusable(self, conn: _Connection, now: float) -> bool:
        return conn.reusable(now)
