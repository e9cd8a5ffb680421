"""Lasso's own accept loop around hypercorn's per-connection machinery.

Why not ``hypercorn.trio.serve``: it runs every connection's ``TCPServer`` in
one nursery through ``trio.serve_listeners``, so an exception out of any one
connection ends the whole server. One does escape: when a WebSocket peer
sends a bad frame and closes, hypercorn's ping task (``WSStream._send_pings``)
calls ``send_all`` while ``TCPServer._close`` is in ``send_eof``, and the
``trio.BusyResourceError`` ends ``lasso serve`` with rc=1. hypercorn also has
no connection limit, only a per-receive read timeout (a slowloris client
sending one header line at a time holds a connection indefinitely), and it
writes every byte under a shield with no deadline (a client that stops
reading holds its connection, and the shutdown, forever).

So this module keeps hypercorn's protocol code (h11, wsproto, the ASGI
bridge) and replaces the loop around it:

* every connection runs in its own guard: an ``Exception`` out of it ends
  that connection with one log line, never its siblings or the listener;
* at most ``max_connections`` connections at once, and at most
  ``max_connections_per_ip`` from one client address (0: no per-address cap);
  one more gets a canned HTTP 503 with JSON-RPC error -32005 and
  ``Retry-After``, then is closed. The address is the TCP peer's: behind a
  reverse proxy every client shares the proxy's, so raise or disable the cap
  there;
* at most ``max_ws_connections`` WebSocket sessions at once (every WebSocket
  route, counted from the handshake until the session ends); one more has its
  handshake refused with the same 503 -32005 (``websocket.http.response``);
* a request head must be complete within ``header_timeout_ms`` of its first
  byte (an idle keep-alive connection, with no byte of a next request, is
  left to hypercorn's ``keep_alive_timeout``);
* every write to a client has a deadline: each ``SEND_CHUNK`` bytes must be
  accepted within ``ws_send_timeout_ms``, or the TCP connection is aborted
  (RST). The write stays shielded from outside cancellation, as hypercorn
  wants (a half-written frame would corrupt the stream), but the shield has
  its own deadline;
* an absolute-form request target (``POST http://host/rpc/x``) is served as
  its path, as RFC 9112 requires; its authority is ignored (``origin_form``);
* a connection owns its tasks: once its socket is done, the tasks hypercorn
  started for it (the ping loop sleeping ``websocket_ping_interval``, the
  keep-alive timer, the ASGI app) are cancelled, rather than outliving the
  socket and then holding every later shutdown for ``graceful_timeout``;
* a closing connection half-closes and reads what its peer still sends (at
  most ``LINGER_S``) before it closes, so the peer reads our last bytes (a
  503, a close frame) rather than losing them to an RST;
* shutdown: stop accepting (the listening sockets are closed), let in-flight
  connections finish for ``shutdown_grace_ms``, then cancel them and abort
  their sockets, so no peer can hold the process past the grace period.

This leans on hypercorn 0.18 internals (``TCPServer`` and its
``_read_data``/``protocol_send``/``_task_group``, ``WorkerContext``,
``Lifespan``, ``H11Protocol.connection``); ``pyproject.toml`` pins
``hypercorn<0.19``. The fixes belong in hypercorn; until they land there,
they live here.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from math import inf
from typing import Any
from urllib.parse import unquote, urlsplit

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr, repr_socket_addr

from lasso.core.jsonrpc import error_body
from lasso.web.rawhttp import FastHTTP

log = logging.getLogger("lasso.server")

#: Each slice of a response must reach the client's socket within the send deadline;
#: a client must so accept at least SEND_CHUNK bytes per ``ws_send_timeout_ms``.
SEND_CHUNK = 64 * 1024
#: A closing connection reads (and drops) what its peer still sends for at most this
#: long before the socket is closed: closing with unread bytes sends RST, and an RST
#: makes the peer's kernel drop what we sent last (a 503, a close frame) unread.
LINGER_S = 1.0
#: At most this many refused connections are answered at once; more are just closed.
MAX_REFUSING = 64
BUSY_RETRY_AFTER_S = 1

_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError)


def busy_response(message: str) -> bytes:
    """A whole HTTP/1.1 503 with a JSON-RPC -32005 body, for a connection we will not serve."""
    body = error_body(None, -32005, message)
    return (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nretry-after: %d\r\nconnection: close\r\n\r\n%s"
        % (len(body), BUSY_RETRY_AFTER_S, body)
    )


TOO_MANY_CONNECTIONS = busy_response("Server busy: too many connections")
TOO_MANY_FROM_ADDRESS = busy_response("Server busy: too many connections from this address")
TOO_MANY_WEBSOCKETS_BODY = error_body(None, -32005, "Server busy: too many WebSocket connections")


class ListenError(Exception):
    """The gateway cannot listen on its address (port busy, not permitted, no such host).

    Raised before any provider or devnet node starts, so ``lasso serve`` and ``lasso up``
    report it as one line (``lasso.cli``) instead of a nursery's exception-group trace.
    """

    def __init__(self, host: str, port: int, reason: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {shown}:{port}: {reason}")
        self.host = host
        self.port = port


#: The connection whose tasks are running: set by the accept loop in each connection's own
#: task, so the ASGI app hypercorn starts for it (a child task) reads its own connection.
CURRENT_CONNECTION: ContextVar[Connection | None] = ContextVar("lasso_connection", default=None)


def current_connection() -> Connection | None:
    """The front-end connection serving the current task (None outside FrontServer)."""
    return CURRENT_CONNECTION.get()


class FrontLimits:
    """The [server] limits this module enforces, in seconds."""

    def __init__(
        self,
        *,
        max_connections: int,
        header_timeout_s: float,
        send_timeout_s: float,
        grace_s: float,
        max_connections_per_ip: int = 0,
        max_ws_connections: int | None = None,
        fast_path: bool = True,
    ) -> None:
        self.max_connections = max_connections
        #: 0: no per-address cap.
        self.max_connections_per_ip = max_connections_per_ip
        #: Serve plain ``POST /rpc/...`` without h11 (lasso.web.rawhttp); read per connection.
        self.fast_path = fast_path
        self.max_ws_connections = (
            max_connections if max_ws_connections is None else max_ws_connections
        )
        self.header_timeout_s = header_timeout_s
        self.send_timeout_s = send_timeout_s
        self.grace_s = grace_s


def bind_socket(bind: str) -> socket.socket:
    """A listening-ready TCP socket for a ``host:port`` bind, as hypercorn's
    ``Config.create_sockets`` makes it (TCP_NODELAY, SO_REUSEADDR, non-blocking), except
    that a failed bind closes the socket (hypercorn leaks it) and raises
    :class:`ListenError`: one clear line even when the port was taken after the daemon's
    ``check_listen`` looked."""
    host, _, port = bind.replace("[", "").replace("]", "").rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ListenError(host, int(port), reason[:1].lower() + reason[1:]) from None
    return sock


def abort_stream(stream: trio.SocketStream) -> None:
    """Drop a TCP connection now (RST): wakes any task blocked sending on it."""
    sock = stream.socket
    with contextlib.suppress(OSError):  # already closed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Connection(TCPServer):
    """One client connection: hypercorn's, with deadlines on head reads and on sends."""

    def __init__(
        self,
        app: AppWrapper,
        config: HypercornConfig,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SocketStream,
        limits: FrontLimits,
        *,
        fast: bool = True,
    ) -> None:
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]
        self.limits = limits
        #: The HTTP/1.1 fast path (lasso.web.rawhttp) until a request is declined; then
        #: None, and hypercorn's protocol has the connection.
        self.fast: FastHTTP | None = FastHTTP(self) if fast else None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.aborted: str | None = None
        self.address = "?"  # the client's IP address, set by the accept loop
        self._head_deadline = inf
        self._closing = False
        self._linger_deadline = inf
        self._peer_done = trio.Event()
        self._reader: trio.lowlevel.Task | None = None
        self._read_scope: trio.CancelScope | None = None
        self._idle_deadline = inf
        self._owed = b""  # the rest of a frame write_now began: goes out before anything

    def abort(self, reason: str) -> None:
        """Drop the connection now, whatever any of its tasks is doing."""
        if self.aborted is None:
            self.aborted = reason
            abort_stream(self.stream)  # type: ignore[arg-type]

    def write_now(self, data: bytes | memoryview) -> int:
        """Write what the socket takes of ``data`` now, without waiting or a task switch.

        Returns the bytes written (0 when the kernel buffer is full), or -1 when no
        write may start now: another write holds the send lock (bytes must never
        interleave), or the connection is closing or gone. A caller with bytes left
        over hands them to :meth:`owe` at once (no await in between), then sends
        them with :meth:`send_raw`. For pre-framed WebSocket frames on a connection
        without extensions (lasso.web.ws fan-out).
        """
        if self.send_lock.locked() or self._owed or self._closing or self.aborted is not None:
            return -1
        try:
            return os.write(self.stream.socket.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError:  # reset, broken pipe, closed: the read loop will see it
            return -1

    def owe(self, rest: bytes | memoryview) -> None:
        """The unwritten rest of a frame :meth:`write_now` began: the next send of any
        task (a ping or close frame of hypercorn's, :meth:`send_raw`) writes it first,
        under the send lock, so no other bytes can land inside that frame. (fanout)"""
        self._owed += rest

    async def send_raw(self, data: bytes | memoryview) -> None:
        """Write bytes under the send lock and the send deadline, as hypercorn's own sends."""
        await self.protocol_send(RawData(bytes(data)))

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                await self._send_after_owed(event.data)
            except _GONE:
                await self.protocol.handle(Closed())

    async def _send_after_owed(self, data: bytes | memoryview) -> None:
        """Send ``data`` after what a frame :meth:`write_now` began still owes (the caller
        holds the send lock)."""
        if self._owed:
            data, self._owed = self._owed + bytes(data), b""
        await self._send_with_deadline(data)

    async def _send_with_deadline(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), SEND_CHUNK):
            # Shielded as hypercorn does (a cancelled half-written frame would corrupt
            # the stream), but with a deadline of its own: a peer that reads nothing
            # cannot pin this task, its connection or the shutdown.
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.limits.send_timeout_s
                await self.stream.send_all(view[start : start + SEND_CHUNK])
            if scope.cancelled_caught:
                self.abort("send timeout")
                raise trio.ClosedResourceError("send timeout")

    async def _close(self) -> None:
        """Half-close, linger until the peer is done sending (bounded), then close."""
        if self._closing:
            return
        self._closing = True
        self._linger_deadline = trio.current_time() + LINGER_S
        # Shielded (send_eof only checkpoints): hypercorn closes from inside the final body's
        # send, and quart-trio cancels that very task on the http.disconnect the close
        # causes; a cancel here left _closing set and the socket open, so an HTTP/1.0 or
        # ``Connection: close`` answer from a quart route never reached EOF, and the peer
        # held the shutdown for its grace period. Workaround for quart-trio/hypercorn.
        with contextlib.suppress(*_GONE), trio.CancelScope(shield=True):
            await self.stream.send_eof()
        if trio.lowlevel.current_task() is self._reader:
            return  # called from our own read loop: it lingers, then closes the socket
        try:
            with trio.move_on_at(self._linger_deadline):
                await self._peer_done.wait()
        finally:
            self.stream.socket.close()

    async def _read_data(self) -> None:
        self._reader = trio.lowlevel.current_task()
        sock = self.stream.socket
        try:
            self.client = parse_socket_addr(sock.family, sock.getpeername())
            self.server = parse_socket_addr(sock.family, sock.getsockname())
        except OSError:  # reset before we got here (hypercorn's run() tolerates it too)
            return
        if self.fast is not None:  # hypercorn's keep-alive timer knows nothing of fast mode
            await self.idle_task.stop()
        try:
            await self._read_until_done()
            self._peer_done.set()
            await self.protocol.handle(Closed())
        finally:
            self._peer_done.set()
            if self._closing:
                self.stream.socket.close()
            # The connection owns what hypercorn started for it: with the socket done,
            # nothing of it may linger (the ping loop sleeps websocket_ping_interval).
            tasks = self._task_group._nursery
            if tasks is not None:
                tasks.cancel_scope.cancel()

    async def _read_until_done(self) -> None:
        while True:
            fast = self.fast
            if fast is not None:
                await fast.wait_drained()
            self._idle_deadline = inf
            if fast is not None and fast.idle and not self._closing:
                self._idle_deadline = trio.current_time() + self.config.keep_alive_timeout
            deadline = min(self._head_deadline, self._linger_deadline, self._idle_deadline)
            scope = None
            try:
                if deadline == inf and fast is None:  # no scope to wait in: ~1.5 KB less
                    data = await self.stream.receive_some(MAX_RECV)  # per idle WebSocket
                else:
                    with trio.CancelScope(deadline=deadline) as scope:
                        self._read_scope = scope
                        data = await self.stream.receive_some(MAX_RECV)
            except _GONE:
                return
            finally:
                self._read_scope = None
            if scope is not None and scope.cancelled_caught:
                if self._closing:
                    return
                if fast is None or fast.declined or fast.waiting_for_head:
                    if self._head_deadline <= trio.current_time():
                        self.abort("request head timeout")
                        return
                elif fast.idle and self._idle_deadline <= trio.current_time():
                    await self._close()  # kept alive with no request for keep_alive_timeout
                continue
            if fast is not None:
                if not fast.declined:
                    fast.feed(bytes(data))
                    if not data:
                        return
                    self._track_request_head()
                    continue
                await fast.handed_over.wait()  # its buffer reaches hypercorn first
                self.fast = None
            await self.protocol.handle(RawData(bytes(data)))
            if not data:
                return
            self._track_request_head()

    # -- the fast path's calls (lasso.web.rawhttp) --------------------------------

    def start_fast_handler(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Run the fast path's handler among this connection's tasks."""
        nursery = self._task_group._nursery
        assert nursery is not None
        nursery.start_soon(self._guard_fast, handler)

    async def _guard_fast(self, handler: Callable[[], Awaitable[None]]) -> None:
        try:
            await handler()
        except Exception as exc:  # our bug: this connection ends, never its siblings
            log.warning(
                "fast path on %s ended by %s: %s", _peer(self.stream), type(exc).__name__, exc
            )
            self.abort("fast path error")

    async def hand_to_hypercorn(self, data: bytes) -> None:
        """A declined request: hypercorn's protocol gets it, and the connection, from here."""
        fast = self.fast
        assert fast is not None
        try:
            if data:
                await self.protocol.handle(RawData(data))
                self._track_request_head()
            if fast.eof:
                await self.protocol.handle(RawData(b""))
        finally:
            fast.handed_over.set()

    async def send_bytes(self, data: bytes | memoryview) -> bool:
        """Write one answer (or part of one) under the send lock and deadline; False if
        the connection is gone. What the kernel takes at once is written without a wait
        (most answers): only a remainder goes through the deadline-bounded send."""
        written = self.write_now(data)
        if written == len(data):
            return True
        if written > 0:
            data = memoryview(data)[written:]  # a view: a 5 MB answer is never copied
        async with self.send_lock:
            try:
                await self._send_after_owed(data)
            except _GONE:
                return False
        return True

    def head_taken(self) -> None:
        """The fast path parsed a whole request head: its header deadline is met."""
        self._head_deadline = inf

    async def close_after_answer(self) -> None:
        await self._close()

    def answered(self) -> None:
        """A fast-mode answer went out: an idle connection now has keep_alive_timeout."""
        scope = self._read_scope
        if scope is not None and self.fast is not None and self.fast.idle:
            self._idle_deadline = trio.current_time() + self.config.keep_alive_timeout
            scope.deadline = min(scope.deadline, self._idle_deadline)

    @property
    def terminated(self) -> bool:
        """The server is draining: answers close their connection."""
        return bool(self.context.terminated.is_set())

    @property
    def idle(self) -> bool:
        """Between two HTTP/1.1 requests: nothing received of the next one, nothing owed."""
        if self.fast is not None and not self.fast.declined:
            return self.fast.idle
        connection = getattr(self.protocol.protocol, "connection", None)
        return (
            isinstance(connection, h11.Connection)
            and connection.their_state is h11.IDLE
            and connection.our_state is h11.IDLE
            and not connection.trailing_data[0]
        )

    def close_idle(self) -> None:
        """Close an idle connection politely (FIN, not RST): its read loop sees the end and
        closes the socket."""
        self._closing = True
        with contextlib.suppress(OSError):
            self.stream.socket.shutdown(socket.SHUT_RDWR)

    def _track_request_head(self) -> None:
        """Start the head deadline at the first byte of a request; clear it once parsed
        (by the fast path or by h11, whichever has the connection)."""
        fast = self.fast
        if fast is not None and not fast.declined:
            waiting = fast.waiting_for_head
        else:
            connection = getattr(self.protocol.protocol, "connection", None)
            waiting = (
                isinstance(connection, h11.Connection)
                and connection.their_state is h11.IDLE
                and bool(connection.trailing_data[0])
            )
        if not waiting:
            self._head_deadline = inf
        elif self._head_deadline == inf:
            self._head_deadline = trio.current_time() + self.limits.header_timeout_s


class FrontServer:
    """The listening sockets, the live connections, and their shutdown."""

    def __init__(
        self,
        app: AppWrapper,
        config: HypercornConfig,
        limits: FrontLimits,
        *,
        listen_socket: socket.socket | None = None,
    ) -> None:
        """``listen_socket``: a listening socket to accept on (a worker's, bound and inherited
        from its parent: lasso.workers) instead of binding ``config.bind``."""
        self.app: AppWrapper = _FrontApp(app, self)
        self._prebound = listen_socket
        self.config = config
        self.limits = limits
        self.context = WorkerContext(None)
        self.state: LifespanState = {}
        self.connections: set[Connection] = set()
        #: Open connections per client address.
        self.per_address: dict[str, int] = {}
        self.websockets = 0
        self.accepted = 0
        self.refused = 0
        self.refused_per_address = 0
        self.refused_websockets = 0
        self.failed = 0
        self._refusing = 0
        self._all_closed = trio.Event()

    async def serve(
        self,
        shutdown_trigger: Callable[[], Awaitable[Any]],
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        lifespan = Lifespan(self.app, self.config, self.state)
        async with trio.open_nursery() as lifespan_nursery:
            await lifespan_nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            listeners, binds = self._listen()
            try:
                async with trio.open_nursery() as handlers:
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept_loop, listener, handlers)
                        task_status.started(binds)
                        await shutdown_trigger()
                        accepting.cancel_scope.cancel(reason="shutting down")
                    _close_all(listeners)  # new connections are refused from here on
                    await self._drain(handlers)
            finally:
                _close_all(listeners)
            await lifespan.wait_for_shutdown()
            lifespan_nursery.cancel_scope.cancel()

    def _listen(self) -> tuple[list[trio.SocketListener], list[str]]:
        listeners, binds = [], []
        if self._prebound is not None:
            socks = [self._prebound]
            self._prebound.setblocking(False)
        else:
            socks = [bind_socket(bind) for bind in self.config.bind]
        for sock in socks:
            sock.listen(self.config.backlog)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
        return listeners, binds

    async def _drain(self, handlers: trio.Nursery) -> None:
        """Idle connections close now; busy ones get the grace period, then are dropped."""
        await self.context.terminated.set()
        # A kept-alive connection between requests would wait for its next request (or the
        # grace period): close it now. hypercorn closes keep-alive connections only after an
        # answer sent once terminated is set, never ones already idle.
        for connection in list(self.connections):
            if connection.idle:
                connection.close_idle()
        if self.connections:
            with trio.move_on_after(self.limits.grace_s):
                await self._all_closed.wait()
        handlers.cancel_scope.cancel(reason="shutdown grace period over")
        for connection in list(self.connections):
            connection.abort("shutdown")

    async def _accept_loop(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                log.warning("accept: %s; retrying in 0.1 s", exc.strerror)
                await trio.sleep(0.1)
                continue
            address = _peer_address(stream)
            refusal = self._admit(address)
            if refusal is None:
                connection = Connection(
                    self.app,
                    self.config,
                    self.context,
                    ConnectionState(self.state.copy()),
                    stream,
                    self.limits,
                    fast=self.limits.fast_path,
                )
                connection.address = address
                self.connections.add(connection)
                self._count_address(address, +1)
                self.accepted += 1
                handlers.start_soon(self._run, connection)
            else:
                self.refused += 1
                if self._refusing < MAX_REFUSING:
                    self._refusing += 1
                    handlers.start_soon(self._refuse, stream, refusal)
                else:
                    abort_stream(stream)

    def _admit(self, address: str) -> bytes | None:
        """None to serve a new connection, or the 503 that refuses it."""
        if len(self.connections) >= self.limits.max_connections:
            return TOO_MANY_CONNECTIONS
        cap = self.limits.max_connections_per_ip
        if cap and self.per_address.get(address, 0) >= cap:
            self.refused_per_address += 1
            return TOO_MANY_FROM_ADDRESS
        return None

    def _count_address(self, address: str, delta: int) -> None:
        count = self.per_address.get(address, 0) + delta
        if count > 0:
            self.per_address[address] = count
        else:
            self.per_address.pop(address, None)

    async def _run(self, connection: Connection) -> None:
        CURRENT_CONNECTION.set(connection)  # this task's own context: its children inherit it
        try:
            await connection.run()
        except* Exception as group:
            self.failed += 1
            log.warning("connection %s ended by %s", _peer(connection.stream), _describe(group))
        finally:
            connection.abort("ended")
            self._count_address(connection.address, -1)
            self.connections.discard(connection)
            if not self.connections and self.context.terminated.is_set():
                self._all_closed.set()

    async def _refuse(self, stream: trio.SocketStream, answer: bytes) -> None:
        """Answer 503 -32005 and close; read what the client sent so the close is clean."""
        try:
            with trio.move_on_after(LINGER_S):
                await stream.send_all(answer)
                await stream.send_eof()
                while await stream.receive_some(MAX_RECV):
                    pass
        except (*_GONE, OSError):
            pass
        finally:
            self._refusing -= 1
            abort_stream(stream)


class _FrontApp:
    """The app as hypercorn calls it, with WebSocket sessions counted and capped, and
    absolute-form request targets reduced to their path (:func:`origin_form`)."""

    def __init__(self, app: AppWrapper, server: FrontServer) -> None:
        self.app = app
        self.server = server

    async def __call__(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        sync_spawn: Callable[..., Any],
        call_soon: Callable[..., Any],
    ) -> None:
        server = self.server
        if scope["type"] != "lifespan" and not scope["path"].startswith("/"):
            scope = origin_form(scope)
        if scope["type"] != "websocket":
            await self.app(scope, receive, send, sync_spawn, call_soon)
        elif server.websockets >= server.limits.max_ws_connections:
            server.refused_websockets += 1
            await _refuse_handshake(scope, send)
        else:
            server.websockets += 1
            try:
                await self.app(scope, receive, send, sync_spawn, call_soon)
            finally:
                server.websockets -= 1


def origin_form(scope: Any) -> Any:
    """``POST http://host/rpc/x`` as ``POST /rpc/x``: hypercorn puts an absolute-form
    target (RFC 9112 3.2.2: a server MUST accept it) whole into the scope's ``path``, so
    the fast path's ``/rpc/`` routes missed it (404) while Quart's routes matched. The
    authority is dropped, never used: a target cannot name another host. Other forms
    (``*``, CONNECT's ``host:port``) are left to the app's 404. The fix belongs in
    hypercorn (``HTTPStream``/``WSStream`` build the scope); until then it lives here."""
    parts = urlsplit(scope["raw_path"].decode("latin-1"))
    if parts.scheme.lower() not in ("http", "https", "ws", "wss") or not parts.netloc:
        return scope
    raw_path = (parts.path or "/").encode("latin-1")
    return {**scope, "raw_path": raw_path, "path": unquote(parts.path or "/")}


async def _refuse_handshake(scope: Any, send: Any) -> None:
    """503 -32005 with Retry-After instead of the upgrade (hypercorn's 403 without the
    ``websocket.http.response`` extension)."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1013})
        return
    body = TOO_MANY_WEBSOCKETS_BODY
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % BUSY_RETRY_AFTER_S),
    ]
    await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def _peer_address(stream: Any) -> str:
    try:
        return str(stream.socket.getpeername()[0])
    except (OSError, ValueError, IndexError):
        return "?"


def _close_all(listeners: list[trio.SocketListener]) -> None:
    for listener in listeners:
        listener.socket.close()


def _peer(stream: Any) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except (OSError, ValueError):
        return "?"
    return f"{host}:{port}"


def _describe(group: BaseExceptionGroup[Exception]) -> str:
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return "; ".join(f"{type(e).__name__}: {e}" for e in leaves[:3])
