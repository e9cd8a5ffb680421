"""A fault-injecting HTTP proxy in front of a real JSON-RPC node.

:class:`~lasso.chaos.faults.Fault` names what a misbehaving node does (the test
suite's in-memory ``FakeNode`` scripts the same faults); this proxy puts them on
the wire, so the gateway's real HTTP transport meets them as it would meet a real
provider:

    fault              on the wire
    None               forward the body upstream, return its answer unchanged
    HTML_500           ``HTTP/1.1 500`` with an HTML page (not forwarded)
    RESET              read the request, then close with SO_LINGER 0: a TCP RST
    FORWARD_THEN_RESET forward the request, wait for the node's answer, then RST
                       instead of sending it: the node acted, the client cannot know
    REFUSED            emulated: RST as soon as the request's first bytes arrive,
                       before it is read (a kernel refusal cannot be scripted
                       per request; the client sees a reset, not ECONNREFUSED)
    HANG               read the request, never answer; wait for the client to go
    TRUNCATED_JSON     forward, then send half the body with a matching length
    WRONG_ID           forward, then rewrite the answer's ``id``
    RATE_LIMITED_429   ``429`` with ``Retry-After: retry_after_s`` (not forwarded)
    METHOD_NOT_FOUND   a JSON-RPC -32601 error with the request's id (not forwarded)
    REVERT             a JSON-RPC code 3 revert with ``Error(string)`` data

``method_faults`` maps a JSON-RPC method to the fault its requests meet, taking
precedence over ``fault`` for that method (a batch meets the fault of its first
item listed there): a provider that lacks one method, or rate-limits only
``eth_getLogs``. ``delay_s`` (0 by default) is waited before each request is
answered, whatever the fault: injected latency. The wait ends early when the
client hangs up (nothing is forwarded then) or the proxy closes. When the node
cannot be reached the client gets ``502`` with a plain-text reason, or, with
``reset_when_upstream_down``, a reset: a killed node then looks to the client as
it would without the proxy in between.

``logs_limit`` (a :class:`~lasso.chaos.logslimit.LogsLimit`, off by default)
makes the proxy a provider with an ``eth_getLogs`` limit (see
:mod:`lasso.chaos.logslimit`).

As with ``FakeNode``, ``fault`` applies to every request and ``queued`` faults
are used first, one per request, in arrival order (``None`` in the queue means
one clean forward). A ``REFUSED`` from ``method_faults`` (or from ``fault``
while ``method_faults`` is set) can only act once the request was read: the
client still sees a reset and nothing is forwarded. ``calls`` counts the
requests that arrived, per JSON-RPC method, whatever was done with them.

The server is hand-rolled HTTP/1.1 keep-alive on trio (``Content-Length``
bodies only, as JSON-RPC clients send), listening on 127.0.0.1. A forwarded
request is cancelled when its client hangs up. :func:`open_fault_proxy` owns
the listener and every connection task; leaving it cancels them all and closes
the upstream connections.
"""

from __future__ import annotations

import re
import socket
import struct
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from typing import Any, TypeVar

import msgspec
import trio

from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import LOGS_RESET, LOGS_RESULTS_REFUSED, LogsLimit, logs_window
from lasso.errors import UpstreamError
from lasso.upstream.http import HttpResponse, HttpTransport

__all__ = ["FaultProxy", "FaultProxyStatistics", "open_fault_proxy"]

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_CLOSE_GRACE_S = 2.0
_RECEIVE = 65536

_HTML_500 = (
    b"<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>500 Internal Server Error</h1><p>nginx</p></body></html>"
)
_REVERT_REASON = b"lasso fault proxy"
_JSON = "application/json"
_T = TypeVar("_T")
#: What ``_forward`` returns, with ``reset_when_upstream_down``, when the node is unreachable.
_UPSTREAM_DOWN = HttpResponse(0, b"", None)


class FaultProxyStatistics(msgspec.Struct, frozen=True):
    requests: int
    forwarded: int
    injected: dict[str, int]
    open_connections: int


class FaultProxy:
    """Forwards JSON-RPC POSTs to ``upstream_url`` unless told to misbehave.

    ``url`` is set once :meth:`run` listens. Use :func:`open_fault_proxy`.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        retry_after_s: int = 7,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.upstream_url = upstream_url
        self.fault: Fault | None = None
        #: Per JSON-RPC method: the fault its requests meet instead of ``fault``.
        self.method_faults: dict[str, Fault] = {}
        #: Seconds waited before answering each request (injected latency).
        self.delay_s = 0.0
        #: When the node cannot be reached: reset the client's connection (True), as the
        #: dead node itself would look without the proxy, or answer 502 (False).
        self.reset_when_upstream_down = False
        self.logs_limit: LogsLimit | None = None
        #: The (fromBlock, toBlock) of every eth_getLogs it forwarded, tags resolved.
        self.logs_served: list[tuple[int, int]] = []
        self.queued: deque[Fault | None] = deque()
        self.calls: Counter[str] = Counter()
        self.retry_after_s = retry_after_s
        self.url = ""
        # ``headers`` go upstream with every forward (a keyed provider's auth).
        self._upstream = HttpTransport(upstream_url, dict(headers or {}), provider_id="fault-proxy")
        self._injected: Counter[str] = Counter()
        self._forwarded = 0
        self._open = 0

    def statistics(self) -> FaultProxyStatistics:
        return FaultProxyStatistics(
            requests=self.calls.total(),
            forwarded=self._forwarded,
            injected=dict(self._injected),
            open_connections=self._open,
        )

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 (port 0) until cancelled; ``task_status`` gets the URL."""
        try:
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(
                    partial(trio.serve_tcp, self._serve_connection, 0, host=HOST)
                )
                port = listeners[0].socket.getsockname()[1]
                self.url = f"http://{HOST}:{port}"
                task_status.started(self.url)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_GRACE_S):
                await self._upstream.aclose()

    def _early_fault(self) -> tuple[bool, Fault | None]:
        """Before a request is read: (whether the fault is already decided, that fault).

        A queued fault is decided; so is ``fault`` unless ``method_faults`` may override it.
        """
        if self.queued:
            return True, self.queued.popleft()
        if not self.method_faults:
            return True, self.fault
        return False, None

    def _method_fault(self, method: str) -> Fault | None:
        """The fault for a read request of ``method`` (a batch's methods joined by commas)."""
        for name in method.split(","):
            fault = self.method_faults.get(name)
            if fault is not None:
                return fault
        return self.fault

    async def _delay(self, conn: _Connection) -> bool:
        """Wait ``delay_s`` unless the client hangs up first; False when it did."""
        if self.delay_s <= 0:
            return True

        async def wait() -> bool:
            await trio.sleep(self.delay_s)
            return True

        return await conn.while_connected(wait) is not None

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        self._open += 1
        conn = _Connection(stream)
        try:
            await self._serve_requests(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._open -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_GRACE_S):
                await stream.aclose()

    async def _serve_requests(self, conn: _Connection) -> None:
        while await conn.fill():
            decided, fault = self._early_fault()
            if fault is Fault.REFUSED:
                self._injected[fault.value] += 1
                await conn.reset()
                return
            request = await conn.read_request()
            if request is None:
                return
            if request.verb != b"POST":
                await conn.send(405, b"only POST", "text/plain", close=True)
                return
            method, rid = _method_and_id(request.body)
            self.calls[method] += 1
            if not decided:
                fault = self._method_fault(method)
            if not await self._delay(conn):
                return
            if fault is Fault.REFUSED:
                self._injected[fault.value] += 1
                await conn.reset()
                return
            if fault is not None:
                self._injected[fault.value] += 1
            elif method == "eth_getLogs" and self.logs_limit is not None:
                handled = await self._answer_logs(conn, request, rid, self.logs_limit)
                if handled is not None:
                    if not handled or request.close:
                        return
                    continue
            if not await self._answer(conn, request, fault, rid) or request.close:
                return

    async def _answer(
        self, conn: _Connection, request: _Request, fault: Fault | None, rid: Any
    ) -> bool:
        """Answer one request as ``fault`` says; False when the connection is done."""
        if fault is Fault.RESET:
            await conn.reset()
            return False
        if fault is Fault.FORWARD_THEN_RESET:
            await conn.while_connected(partial(self._forward, request.body))
            await conn.reset()
            return False
        if fault is Fault.HANG:
            await conn.wait_closed()
            return False
        if fault is Fault.HTML_500:
            await conn.send(500, _HTML_500, "text/html; charset=utf-8")
        elif fault is Fault.RATE_LIMITED_429:
            retry = [(b"retry-after", str(self.retry_after_s).encode())]
            await conn.send(429, b"Too Many Requests", "text/plain", extra=retry)
        elif fault is Fault.METHOD_NOT_FOUND:
            await conn.send(200, _rpc_error(rid, -32601, "Method not found"), _JSON)
        elif fault is Fault.REVERT:
            data = "0x" + _revert_data(_REVERT_REASON).hex()
            await conn.send(200, _rpc_error(rid, 3, "execution reverted", data), _JSON)
        else:
            response = await conn.while_connected(partial(self._forward, request.body))
            if response is None:
                return False  # the client hung up while we waited upstream
            if response is _UPSTREAM_DOWN:
                await conn.reset()
                return False
            body = bytes(response.body)  # a long one is read into a bytearray
            if fault is Fault.TRUNCATED_JSON:
                body = body[: len(body) // 2]
            elif fault is Fault.WRONG_ID:
                body = _rewrite_ids(body)
            await conn.send(response.status, body, _JSON, extra=_retry_after(response))
        return True

    async def _answer_logs(
        self, conn: _Connection, request: _Request, rid: Any, limit: LogsLimit
    ) -> bool | None:
        """Enforce ``limit`` on one eth_getLogs; None: not a range, forward it as usual."""
        window = await logs_window(request.body, self._head)
        if window is None:
            return None
        refusal = _rpc_error(rid, limit.code, limit.message)
        verdict = limit.verdict(window)
        if verdict is not None:
            self._injected[verdict] += 1
            if verdict == LOGS_RESET:
                await conn.reset()
                return False
            await conn.send(200, refusal, _JSON)
            return True
        response = await conn.while_connected(partial(self._forward, request.body))
        if response is None:
            return False
        if response is _UPSTREAM_DOWN:
            await conn.reset()
            return False
        answer = bytes(response.body)  # a long one is read into a bytearray
        if limit.refuses_answer(answer):
            self._injected[LOGS_RESULTS_REFUSED] += 1
            await conn.send(200, refusal, _JSON)
            return True
        self.logs_served.append(window)
        await conn.send(response.status, answer, _JSON, extra=_retry_after(response))
        return True

    async def _head(self) -> int:
        """The node's head number, asked once per tag in an eth_getLogs range."""
        head = await self._upstream.post(_encode(_HEAD_REQUEST))
        return int(msgspec.json.decode(head.body)["result"], 16)

    async def _forward(self, body: bytes) -> HttpResponse:
        self._forwarded += 1
        try:
            return await self._upstream.post(body)
        except UpstreamError as exc:
            if self.reset_when_upstream_down:
                return _UPSTREAM_DOWN
            return HttpResponse(502, f"fault proxy: upstream failed: {exc}".encode(), None)


@asynccontextmanager
async def open_fault_proxy(
    upstream_url: str, *, retry_after_s: int = 7, headers: Mapping[str, str] | None = None
) -> AsyncIterator[FaultProxy]:
    """A :class:`FaultProxy` listening on 127.0.0.1 until the block exits.

    ``headers`` are sent upstream with every forwarded request (e.g. a provider's
    ``authorization``), so the proxy can stand in front of a keyed provider.
    """
    proxy = FaultProxy(upstream_url, retry_after_s=retry_after_s, headers=headers)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.run)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel(reason="fault proxy closing")


# --- the HTTP/1.1 server side ------------------------------------------------

_CONTENT_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_CONNECTION_CLOSE = re.compile(rb"^connection:\s*close\s*$", re.IGNORECASE | re.MULTILINE)
_CHUNKED = re.compile(rb"^transfer-encoding:", re.IGNORECASE | re.MULTILINE)
_STATUSES = frozenset(s.value for s in HTTPStatus)


class _Request(msgspec.Struct, frozen=True):
    verb: bytes
    body: bytes
    close: bool


class _Connection:
    """One accepted connection: a receive buffer and the ways to end it."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def fill(self) -> bool:
        """Wait for more bytes unless some are buffered; False at EOF."""
        if self.buffer:
            return True
        return await self._receive()

    async def _receive(self) -> bool:
        chunk = await self.stream.receive_some(_RECEIVE)
        self.buffer += chunk
        return bool(chunk)

    async def read_request(self) -> _Request | None:
        """The next request, or None when the client went away or sent garbage."""
        end = self.buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(self.buffer) > MAX_HEAD_BYTES or not await self._receive():
                return None
            end = self.buffer.find(b"\r\n\r\n")
        head = bytes(self.buffer[:end])
        verb = head.split(b" ", 1)[0]
        if _CHUNKED.search(head):
            await self.send(501, b"chunked bodies are not supported", "text/plain", close=True)
            return None
        match = _CONTENT_LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        if length > MAX_BODY_BYTES:
            await self.send(413, b"body too large", "text/plain", close=True)
            return None
        total = end + 4 + length
        while len(self.buffer) < total:
            if not await self._receive():
                return None
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        return _Request(verb, body, close=bool(_CONNECTION_CLOSE.search(head)))

    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
        close: bool = False,
    ) -> None:
        phrase = HTTPStatus(status).phrase.encode() if status in _STATUSES else b"Unknown"
        lines = [b"HTTP/1.1 %d %b" % (status, phrase), b"content-type: " + content_type.encode()]
        lines.append(b"content-length: %d" % len(body))
        lines += [name + b": " + value for name, value in extra or []]
        if close:
            lines.append(b"connection: close")
        await self.stream.send_all(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    async def reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send a TCP RST."""
        linger = struct.pack("ii", 1, 0)
        self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        await self.stream.aclose()

    async def wait_closed(self) -> None:
        """Read and drop whatever arrives until the client closes."""
        try:
            while await self._receive():
                self.buffer.clear()
        except trio.BrokenResourceError:
            pass

    async def while_connected(self, fn: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run ``fn``; cancel it and return None if the client hangs up meanwhile.

        Bytes that arrive meanwhile (a pipelined request) are kept in the buffer.
        """
        outcome: list[_T] = []

        async def call(cancel_scope: trio.CancelScope) -> None:
            outcome.append(await fn())
            cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, nursery.cancel_scope)
            try:
                if not await self._receive():
                    nursery.cancel_scope.cancel(reason="client hung up")
            except trio.BrokenResourceError:
                nursery.cancel_scope.cancel(reason="client connection broke")
        return outcome[0] if outcome else None


# --- JSON-RPC helpers ---------------------------------------------------------

_encode = msgspec.json.encode
_Answer = dict[str, msgspec.Raw]
_decode_answers = msgspec.json.Decoder(_Answer | list[_Answer]).decode


def _method_and_id(body: bytes) -> tuple[str, Any]:
    """The request's method and id (for a batch: the first item's id, methods joined)."""
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return "?", None
    items = request if isinstance(request, list) else [request]
    methods = [str(i.get("method", "?")) if isinstance(i, dict) else "?" for i in items]
    first = items[0] if items and isinstance(items[0], dict) else {}
    return ",".join(methods) or "?", first.get("id")


_HEAD_REQUEST = {"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}


def _rpc_error(rid: Any, code: int, message: str, data: str | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return _encode({"jsonrpc": "2.0", "id": rid, "error": error})


def _revert_data(reason: bytes) -> bytes:
    """ABI-encoded ``Error(string)``, as a Solidity ``revert("...")`` produces."""
    padded = reason + b"\0" * (-len(reason) % 32)
    return bytes.fromhex("08c379a0") + (32).to_bytes(32) + len(reason).to_bytes(32) + padded


def _wrong_id(raw: msgspec.Raw | None) -> msgspec.Raw:
    rid = msgspec.json.decode(raw) if raw is not None else None
    if isinstance(rid, int) and not isinstance(rid, bool):
        return msgspec.Raw(_encode(rid + 1000))
    return msgspec.Raw(_encode(f"{rid}-wrong"))


def _rewrite_ids(body: bytes) -> bytes:
    """The same answer(s) with every ``id`` changed; bodies that are not JSON pass."""
    try:
        answers = _decode_answers(body)
    except msgspec.DecodeError:
        return body
    for answer in answers if isinstance(answers, list) else [answers]:
        answer["id"] = _wrong_id(answer.get("id"))
    return _encode(answers)


def _retry_after(response: HttpResponse) -> list[tuple[bytes, bytes]]:
    return [] if response.retry_after is None else [(b"retry-after", response.retry_after.encode())]
