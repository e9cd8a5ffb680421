"""HTTP/1.1 for the upstream client, sans I/O: one request's bytes, one response read.

The upstream HTTP transport (:mod:`lasso.upstream.http`) sends exactly one POST at a
time on a connection and reads its one response, so what it needs from HTTP/1.1 is
small, and this module is all of it:

* :class:`RequestHead` -- the request line and headers of every POST to one URL,
  encoded once; per request only ``content-length`` is added (one bytes format).
* :class:`ResponseReader` -- fed the bytes the socket gives, it returns the response
  once complete: status, body (the bytes as received, joined once: a 5 MB result is
  never copied twice), ``Retry-After`` and whether the connection may be reused.

Theory of operation (the reader). States, in order::

    HEAD    until the blank line; 1xx interim responses are skipped
    LENGTH  Content-Length bytes
    CHUNKED chunk-size line, data, CRLF ... last chunk, trailers, blank line
    CLOSE   no length and not chunked: the body runs to the end of the stream
    DONE    a response is complete (returned by ``feed`` / ``eof``)

An answer that breaks the framing raises :class:`ProtocolError`; a stream that
ends before the response is complete raises :class:`Disconnected`, with
``started`` telling whether any byte of the response arrived (before any, a
kept-alive connection the server closed as we reused it: safe to retry for a
replay-safe request). What httpcore + h11 did here cost about a fifth of the
gateway's CPU per request (two socket sends per request, event objects, header
validation on every request); see docs/PERFORMANCE.md.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = ["Disconnected", "ProtocolError", "RequestHead", "Response", "ResponseReader"]

#: A body framed by a length at least this long is read into one buffer of its size.
DIRECT_BODY_BYTES = 256 * 1024
#: The longest response head accepted (status line and headers).
MAX_HEAD_BYTES = 64 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?\r?")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
#: The response headers the reader acts on (the others are only checked for a colon).
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"retry-after"})
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")


class ProtocolError(Exception):
    """The server's answer is not valid HTTP/1.1 framing."""


class Disconnected(Exception):
    """The stream ended before the response was complete."""

    def __init__(self, message: str, *, started: bool) -> None:
        super().__init__(message)
        #: Whether any byte of the response had arrived.
        self.started = started


class RequestHead:
    """The head of every POST to one URL, encoded once (see the module docstring)."""

    __slots__ = ("_prefix",)

    def __init__(self, target: str, headers: list[tuple[str, str]]) -> None:
        lines = [b"POST %b HTTP/1.1\r\n" % target.encode("ascii")]
        for name, value in headers:
            raw_name, raw_value = name.encode("ascii"), value.strip().encode()
            if not _TOKEN.fullmatch(raw_name) or _BAD_VALUE.search(raw_value):
                raise ValueError(f"invalid request header {name!r}")
            lines.append(b"%b: %b\r\n" % (raw_name, raw_value))
        self._prefix = b"".join(lines) + b"content-length: "

    def encode(self, body_length: int) -> bytes:
        """The request head for a body of ``body_length`` bytes."""
        return self._prefix + b"%d\r\n\r\n" % body_length


def _content_length(value: bytes, seen: int | None) -> int:
    """A Content-Length value (``5``, or a list of one value: ``5, 5``), the same as any
    seen before it; else the framing is ambiguous: a protocol error."""
    values = {v.strip() for v in value.split(b",")} if b"," in value else {value}
    if len(values) != 1 or not value.strip()[:1].isdigit():
        raise ProtocolError("bad content-length")
    text = values.pop()
    if not text.isdigit() or (seen is not None and int(text) != seen):
        raise ProtocolError("bad content-length")
    return int(text)


class Response:
    """One complete response."""

    __slots__ = ("body", "keep_alive", "retry_after", "status")

    def __init__(
        self, status: int, body: bytes | bytearray, retry_after: str | None, keep_alive: bool
    ) -> None:
        self.status = status
        #: As received: a long body is the ``bytearray`` it was read into, never copied.
        self.body = body
        self.retry_after = retry_after
        #: The connection may carry the next request (HTTP/1.1, no ``Connection: close``,
        #: framed by length or chunks, nothing after the response).
        self.keep_alive = keep_alive


class _State(Enum):
    HEAD = "head"
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"
    DONE = "done"


class ResponseReader:
    """Reads one response from the bytes fed to it (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_filled",
        "_into",
        "_keep_alive",
        "_left",
        "_parts",
        "_retry_after",
        "_started",
        "_state",
        "_status",
    )

    def __init__(self) -> None:
        self._state = _State.HEAD
        self._buffer = b""  # framing bytes not consumed yet (head, chunk lines)
        self._parts: list[bytes] = []  # the body, as received
        self._left = 0  # LENGTH: body bytes still to come; CHUNKED: of this chunk's data
        self._status = 0
        self._retry_after: str | None = None
        self._keep_alive = True
        self._started = False
        self._into: bytearray | None = None  # a long body's one buffer (see buffer())
        self._filled = 0

    @property
    def started(self) -> bool:
        """Whether any byte of the response has arrived."""
        return self._started

    def feed(self, data: bytes) -> Response | None:
        """Take the next bytes from the stream; the response once it is complete."""
        if data:
            self._started = True
        state = self._state
        if state is _State.LENGTH and not self._buffer:
            return self._take_length(data)  # the common case: body bytes straight in
        if state is _State.CLOSE:
            self._parts.append(data)
            return None
        if state is _State.DONE:
            raise ProtocolError("data after the response")
        self._buffer += data
        return self._advance()

    def buffer(self) -> memoryview | None:
        """Where the rest of a long body (``DIRECT_BODY_BYTES`` or more, framed by its
        length) goes: the I/O shell reads straight into it and reports with
        :meth:`wrote`, so the body is never joined from pieces. None otherwise."""
        if self._into is None or self._state is not _State.LENGTH or self._buffer:
            return None
        return memoryview(self._into)[self._filled :]

    def wrote(self, count: int) -> Response | None:
        """``count`` more bytes of the body are in :meth:`buffer`; the response once whole."""
        if count:
            self._started = True
        self._filled += count
        self._left -= count
        if self._left:
            return None
        self._state = _State.DONE
        into, self._into = self._into, None
        assert into is not None
        return Response(self._status, into, self._retry_after, self._keep_alive)

    def eof(self) -> Response:
        """The stream ended: the response if it is complete by that, else raise."""
        if self._state is _State.CLOSE:
            self._state = _State.DONE
            return self._response(keep_alive=False)
        if not self._started:
            raise Disconnected("Server disconnected without sending a response.", started=False)
        received = self._filled + sum(len(p) for p in self._parts)
        raise Disconnected(
            "peer closed connection without sending complete message body: "
            f"received {received} bytes",
            started=True,
        )

    # -- states ---------------------------------------------------------------------

    def _advance(self) -> Response | None:
        while True:
            state = self._state
            if state is _State.HEAD:
                if not self._head():
                    return None
            elif state is _State.LENGTH:
                data, self._buffer = self._buffer, b""
                return self._take_length(data)
            elif state is _State.CHUNKED:
                step = self._chunk()
                if step is False:
                    return None
                if isinstance(step, Response):
                    return step
            else:  # CLOSE
                self._parts.append(self._buffer)
                self._buffer = b""
                return None

    def _head(self) -> bool:
        """Parse a complete head off the buffer; False when more bytes are needed."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")  # as every server sends it; bare LFs are rare
        if end >= 0:
            head, self._buffer = buffer[:end], buffer[end + 4 :]
        else:
            found = _HEAD_END.search(buffer)
            if found is None:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("response head too long")
                return False
            head, self._buffer = buffer[: found.start()], buffer[found.end() :]
        lines = head.split(b"\n")
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        status = int(status_line.group(2))
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("unexpected 101 Switching Protocols")
            return True  # an interim response: the real one follows
        length: int | None = None
        chunked = False
        keep_alive = status_line.group(1) == b"1"
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            name = name.lower()
            if name not in _FRAMING:  # read only what frames the answer, or may close it
                if not colon or not name or name[-1:] in b" \t":
                    raise ProtocolError(f"bad header line {line[:80]!r}")
                continue
            value = value.strip()
            if name == b"content-length":
                length = _content_length(value, length)
            elif name == b"transfer-encoding":
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
                if not chunked:
                    raise ProtocolError(f"unsupported transfer-encoding {value[:40]!r}")
            elif name == b"connection":
                value = value.lower()
                if b"close" in value and b"close" in (t.strip() for t in value.split(b",")):
                    keep_alive = False
            else:
                self._retry_after = value.decode("latin-1")
        self._status, self._keep_alive = status, keep_alive
        if chunked:
            self._state = _State.CHUNKED
        elif length is not None:
            self._left = length
            if length >= DIRECT_BODY_BYTES:
                self._into = bytearray(length)
            self._state = _State.LENGTH
        elif status in (204, 304):
            self._left = 0
            self._state = _State.LENGTH
        else:
            self._state = _State.CLOSE
        return True

    def _take_length(self, data: bytes) -> Response | None:
        left = self._left
        if len(data) > left:  # bytes nobody asked for: answer, but never reuse the connection
            data, self._keep_alive = data[:left], False
        if self._into is not None:
            self._into[self._filled : self._filled + len(data)] = data
            return self.wrote(len(data))
        if len(data) < left:
            if data:
                self._parts.append(data)
                self._left = left - len(data)
            return None
        self._parts.append(data)
        self._left = 0
        self._state = _State.DONE
        return self._response(keep_alive=self._keep_alive)

    def _chunk(self) -> Response | bool | None:
        """One step of chunked framing: the response, False for more bytes, None to go on.

        ``_left`` is the phase: > 0 data bytes of the chunk still to come, 0 a size
        line next, -1 the CRLF after a chunk's data, -2 the trailers.
        """
        buffer, left = self._buffer, self._left
        if left > 0:
            if not buffer:
                return False
            take = buffer[:left]
            self._parts.append(take)
            self._buffer = buffer[len(take) :]
            self._left = left - len(take) or -1
            return None
        if left == 0:
            line = _CHUNK_LINE.match(buffer)
            if line is None:
                if b"\n" in buffer or len(buffer) > 1024:
                    raise ProtocolError("bad chunk size line")
                return False
            self._buffer = buffer[line.end() :]
            self._left = int(line.group(1), 16) or -2
            return None
        if left == -1:
            if buffer in (b"", b"\r"):
                return False
            skip = 2 if buffer.startswith(b"\r\n") else 1 if buffer.startswith(b"\n") else 0
            if not skip:
                raise ProtocolError("chunk data not followed by CRLF")
            self._buffer = buffer[skip:]
            self._left = 0
            return None
        if buffer.startswith((b"\r\n", b"\n")):  # -2: no trailers
            rest = buffer[2:] if buffer.startswith(b"\r\n") else buffer[1:]
        else:
            end = _HEAD_END.search(buffer)
            if end is None:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("trailers too long")
                return False
            rest = buffer[end.end() :]
        if rest:  # bytes nobody asked for: answer, but never reuse the connection
            self._keep_alive = False
        self._buffer = b""
        self._state = _State.DONE
        return self._response(keep_alive=self._keep_alive)

    def _response(self, *, keep_alive: bool) -> Response:
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        return Response(self._status, body, self._retry_after, keep_alive)
