"""RESP2, the Redis wire protocol: commands encoded, replies parsed incrementally. Pure.

Theory of operation. A command is an array of bulk strings (:func:`encode`). A reply is
one of five shapes, told by its first byte: ``+`` simple string (:class:`str`), ``-``
error (:class:`ReplyError`, returned as a value, not raised: the caller decides),
``:`` integer (:class:`int`), ``$`` bulk string (:class:`bytes`, or ``None`` for the
nil ``$-1``) and ``*`` array (:class:`list`, or ``None`` for ``*-1``).

:class:`ReplyParser` is fed bytes as they arrive and hands out whole replies
(:meth:`ReplyParser.next` returns :data:`INCOMPLETE` until one is complete). Anything
that is not RESP2, or is larger or deeper than the bounds, raises :class:`ProtocolError`:
the connection is then unusable and must be dropped. Redis is a trusted peer, but a
wrong port (an HTTP server, a TLS listener) must not be able to make us buffer without
bound or recurse without bound.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INCOMPLETE",
    "MAX_ARRAY",
    "MAX_BULK_BYTES",
    "MAX_DEPTH",
    "ProtocolError",
    "Reply",
    "ReplyError",
    "ReplyParser",
    "encode",
]

#: Largest bulk string accepted (a cached answer is far smaller).
MAX_BULK_BYTES: Final = 64 * 1024 * 1024
#: Most elements in one array reply (our commands get at most a handful).
MAX_ARRAY: Final = 1024
#: Deepest nesting of arrays.
MAX_DEPTH: Final = 8
#: Longest header line (type byte, a number or a simple string, CRLF).
MAX_LINE: Final = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a RESP2 reply within our bounds."""


class ReplyError(Exception):
    """An error reply (``-ERR ...``): a value the parser returns, not raises."""

    @property
    def code(self) -> str:
        """The first word, e.g. ``NOSCRIPT``, ``WRONGTYPE``, ``ERR``."""
        text = str(self)
        return text.split(" ", 1)[0]


class _Incomplete:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INCOMPLETE"


#: What :meth:`ReplyParser.next` returns until a whole reply has arrived.
INCOMPLETE: Final = _Incomplete()

Reply = str | bytes | int | None | ReplyError | list["Reply"]


def encode(*args: bytes | str | int) -> bytes:
    """The command ``args`` as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class ReplyParser:
    """Feed bytes with :meth:`feed`; take whole replies with :meth:`next`."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def next(self) -> Reply | _Incomplete:
        """The next whole reply, consumed; :data:`INCOMPLETE` if it has not all arrived."""
        parsed = _parse(self._buffer, 0, 0)
        if parsed is None:
            if len(self._buffer) > MAX_BULK_BYTES + MAX_LINE * (MAX_ARRAY + 1):
                raise ProtocolError("reply larger than any we accept")
            return INCOMPLETE
        reply, end = parsed
        del self._buffer[:end]
        return reply


def _line(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The header line at ``start`` (without its type byte and CRLF) and where it ends."""
    end = buffer.find(b"\r\n", start, start + MAX_LINE)
    if end < 0:
        if len(buffer) - start >= MAX_LINE:
            raise ProtocolError("header line too long")
        return None
    return bytes(buffer[start + 1 : end]), end + 2


def _number(text: bytes) -> int:
    stripped = text[1:] if text[:1] == b"-" else text
    if not stripped or not stripped.isdigit() or len(stripped) > 19:
        raise ProtocolError(f"bad number {text[:32]!r}")
    return int(text)


def _parse(buffer: bytearray, start: int, depth: int) -> tuple[Reply, int] | None:
    if start >= len(buffer):
        return None
    kind = buffer[start]
    line = _line(buffer, start)
    if line is None:
        return None
    text, after = line
    if kind == 0x2B:  # +
        return _decode(text), after
    if kind == 0x2D:  # -
        return ReplyError(_decode(text)), after
    if kind == 0x3A:  # :
        return _number(text), after
    if kind == 0x24:  # $
        return _bulk(buffer, _number(text), after)
    if kind == 0x2A:  # *
        return _array(buffer, _number(text), after, depth)
    raise ProtocolError(f"unknown reply type {bytes([kind])!r}")


def _decode(text: bytes) -> str:
    try:
        return text.decode()
    except UnicodeDecodeError:
        raise ProtocolError("simple string is not UTF-8") from None


def _bulk(buffer: bytearray, size: int, start: int) -> tuple[Reply, int] | None:
    if size == -1:
        return None, start
    if not 0 <= size <= MAX_BULK_BYTES:
        raise ProtocolError(f"bulk string length {size} out of bounds")
    end = start + size
    if len(buffer) < end + 2:
        return None
    if buffer[end : end + 2] != b"\r\n":
        raise ProtocolError("bulk string not followed by CRLF")
    return bytes(buffer[start:end]), end + 2


def _array(buffer: bytearray, count: int, start: int, depth: int) -> tuple[Reply, int] | None:
    if count == -1:
        return None, start
    if not 0 <= count <= MAX_ARRAY:
        raise ProtocolError(f"array length {count} out of bounds")
    if depth >= MAX_DEPTH:
        raise ProtocolError("arrays nested too deep")
    items: list[Reply] = []
    position = start
    for _ in range(count):
        parsed = _parse(buffer, position, depth + 1)
        if parsed is None:
            return None
        item, position = parsed
        items.append(item)
    return items, position
