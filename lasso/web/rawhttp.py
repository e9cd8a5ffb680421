"""The HTTP/1.1 fast path: plain ``POST /rpc/...`` served without h11 or hypercorn.

A connection starts in fast mode. Its read loop (``lasso.web.server.Connection``)
appends what it reads to :attr:`FastHTTP.buf` and wakes one long-lived handler
task, which parses each request head (:func:`lasso.core.http1.parse_head`),
calls the same ASGI app hypercorn would (CORS, gate, body budget, the gateway:
nothing is skipped) with its own ``receive`` and ``send``, and writes the whole
answer in one ``send`` under the connection's send lock and deadline.

The first request the parser declines (another method or path, chunked,
``Expect``, ``Upgrade``, HTTP/1.0, anything odd) ends fast mode for good: the
bytes buffered from that request on are handed to hypercorn's protocol, which
sees a connection that begins there. WebSockets, health, metrics, CORS
preflights and every malformed request are therefore answered by hypercorn
exactly as before.

What the per-request path saves, measured (docs/PERFORMANCE.md): h11's event
machinery, hypercorn's per-request task and queue, the ASGI message
validation, and Lasso's own disconnect-watch task per request (the read loop
cancels the request on EOF instead: scope extension ``lasso.disconnect``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import unquote

import trio

from lasso.core.http1 import DECLINED, INCOMPLETE, DateHeader, Head, parse_head, response_head

if TYPE_CHECKING:
    from lasso.web.server import Connection

log = logging.getLogger("lasso.server")

#: The read loop stops reading while this much is buffered and not yet taken by the
#: handler (a client pipelining faster than it is answered waits for its answers).
READ_PAUSE = 256 * 1024
#: An answer this large is written as head and body, not joined into one buffer.
JOIN_LIMIT = 64 * 1024
#: Scope extension: the server cancels the request when the client disconnects, so the
#: app needs no task of its own waiting for ``http.disconnect`` (lasso.web.asgi).
DISCONNECT_EXTENSION = "lasso.disconnect"

_DATE = DateHeader()
_NO_LENGTH = (204, 304)

Message = MutableMapping[str, Any]


class FastHTTP:
    """The fast-mode state of one connection, shared by its read loop and its handler."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.buf = bytearray()
        #: Set when the handler has declined a request: the read loop hands ``buf`` and
        #: everything after it to hypercorn.
        self.declined = False
        self.handed_over = trio.Event()
        self.eof = False
        self.busy = False  # a request is being answered
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._request_scope: trio.CancelScope | None = None
        self._handler_started = False

    # -- the read loop's side ---------------------------------------------------

    @property
    def idle(self) -> bool:
        """Between requests: nothing of a next request received, nothing owed."""
        return not self.busy and not self.buf

    @property
    def waiting_for_head(self) -> bool:
        return not self.busy and bool(self.buf)

    def feed(self, data: bytes) -> None:
        """Bytes read from the socket (``b""``: the peer closed its side)."""
        if not data:
            self.eof = True
            if self._request_scope is not None:  # the client left: stop its upstream call
                self._request_scope.cancel(reason="client disconnected")
        else:
            self.buf += data
        if not self._handler_started:
            self._handler_started = True
            self.connection.start_fast_handler(self.handle_requests)
        self._wake.set()

    async def wait_drained(self) -> None:
        """Return once the handler has taken enough of the buffer to read more."""
        while len(self.buf) > READ_PAUSE and not self.declined and not self.eof:
            self._drained = trio.Event()
            await self._drained.wait()

    # -- the handler ------------------------------------------------------------

    async def handle_requests(self) -> None:
        """Answer requests until the peer closes, one declines, or one asks to close."""
        while True:
            head = parse_head(self.buf)
            if head is INCOMPLETE:
                if self.eof:
                    return
                await self.wait_for_data()
                continue
            if head is DECLINED or not isinstance(head, Head):
                self.declined = True
                self._drained.set()
                await self.connection.hand_to_hypercorn(bytes(self.buf))
                self.buf.clear()
                return
            del self.buf[: head.size]
            self.connection.head_taken()
            self.busy = True
            try:
                close = await self._answer(head)
            finally:
                self.busy = False
            self.connection.answered()
            if close or self.eof:
                await self.connection.close_after_answer()
                return

    async def _answer(self, head: Head) -> bool:
        """Run the app for one request; True when the connection closes after it."""
        exchange = _Exchange(self, head)
        connection = self.connection
        try:
            with trio.CancelScope() as scope:
                self._request_scope = scope
                if self.eof:
                    scope.cancel()
                app = cast(Any, connection.app)  # hypercorn's AppWrapper, typed for its own events
                await app(exchange.scope(), exchange.receive, exchange.send, _no_spawn, _no_spawn)
        finally:
            self._request_scope = None
        if scope.cancelled_caught or exchange.failed:
            return True
        if not exchange.finished:  # the app sent no answer: hypercorn's rule, a 500
            log.warning("the app answered nothing on %s", head.target[:80])
            await exchange.send_500()
            return True
        return exchange.close

    def take_body(self, wanted: int) -> bytes:
        chunk = bytes(self.buf[:wanted])
        del self.buf[:wanted]
        if len(self.buf) <= READ_PAUSE:
            self._drained.set()
        return chunk

    async def wait_for_data(self) -> None:
        self._wake = trio.Event()
        await self._wake.wait()


def _no_spawn(*args: object) -> NoReturn:
    """hypercorn's ``sync_spawn``/``call_soon``: for WSGI apps, which this path never serves."""
    raise RuntimeError("the fast path serves ASGI apps only")


class _Exchange:
    """One request and its answer: the ``receive`` and ``send`` the ASGI app is given."""

    __slots__ = ("_head", "_owed", "_start", "body_left", "close", "failed", "fast", "finished")

    def __init__(self, fast: FastHTTP, head: Head) -> None:
        self.fast = fast
        self._head = head
        self.body_left = head.content_length
        self.close = head.close
        self._start: Message | None = None
        self._owed: list[bytes] = []
        self.finished = False
        self.failed = False

    def scope(self) -> dict[str, Any]:
        head = self._head
        connection = self.fast.connection
        path, _, query = head.target.partition(b"?")
        return {
            "type": "http",
            "http_version": "1.1",
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": "POST",
            "scheme": "http",
            "path": unquote(path.decode("ascii")),
            "raw_path": path,
            "query_string": query,
            "root_path": connection.config.root_path,
            "headers": head.headers,
            "client": connection.client,
            "server": connection.server,
            "state": connection.state.copy(),
            "extensions": {DISCONNECT_EXTENSION: True},
        }

    async def receive(self) -> Message:
        fast = self.fast
        while self.body_left:
            if fast.buf:
                chunk = fast.take_body(self.body_left)
                self.body_left -= len(chunk)
                return {"type": "http.request", "body": chunk, "more_body": self.body_left > 0}
            if fast.eof:
                return {"type": "http.disconnect"}
            await fast.wait_for_data()
        # The body is complete: the next receive waits for the client to leave.
        while not fast.eof:
            await fast.wait_for_data()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start = message
        elif kind == "http.response.body" and self._start is not None and not self.finished:
            self._owed.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.finished = True
                await self._write()

    async def _write(self) -> None:
        start = self._start
        assert start is not None
        body = b"".join(self._owed) if len(self._owed) != 1 else self._owed[0]
        self._owed = []
        status = int(start["status"])
        headers = list(start.get("headers", ()))
        if status not in _NO_LENGTH and not any(n.lower() == b"content-length" for n, _ in headers):
            headers.append((b"content-length", b"%d" % len(body)))
        connection = self.fast.connection
        if 0 < self.body_left <= len(self.fast.buf):  # answered unread (a 400): h11 drops it
            self.fast.take_body(self.body_left)
            self.body_left = 0
        # A body not yet received (a 413, say) would be read as the next request: close.
        self.close = self.close or self.body_left > 0 or connection.terminated
        head = response_head(status, headers, _DATE.at(time.time()), close=self.close)
        if len(body) <= JOIN_LIMIT:
            ok = await connection.send_bytes(head + body)
        else:
            ok = await connection.send_bytes(head) and await connection.send_bytes(body)
        self.failed = not ok

    async def send_500(self) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-length", b"0")],
            }
        )
        await self.send({"type": "http.response.body", "body": b""})
