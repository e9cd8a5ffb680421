"""The plain HTTP/1.1 JSON-RPC request, parsed without h11: pure, no I/O.

The front end (:mod:`lasso.web.rawhttp`) answers ``POST /rpc/...`` itself
when a request is the plain, common kind: HTTP/1.1, one ``Host``, one
``Content-Length``, no ``Transfer-Encoding``, ``Expect`` or ``Upgrade``, and
a head in CRLF lines that h11 itself would accept. Anything else is *declined*
and the connection is handed, from that request on, to hypercorn and h11,
which answer it exactly as before (an error included). The parser therefore
never has to produce an error: it accepts only a subset of what h11 accepts,
and for that subset it yields what h11 yields (method, target, lower-cased
header names, values stripped of OWS, the body length). A property test
(``tests/web/test_http1_differential.py``) holds it to that against h11.

Why: h11 and hypercorn's per-request machinery cost more CPU than the whole
gateway below them (docs/PERFORMANCE.md has the profile).

The response head is built the way hypercorn and h11 build it, so a client
sees the same bytes whichever path answered (``date`` apart):
``HTTP/1.1 200 \\r\\n``, the app's headers in order, ``date``, ``server``,
then ``Connection: close`` when the connection will close.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate
from typing import Final

#: h11's limit on an incomplete head (hypercorn's ``h11_max_incomplete_size``): a longer
#: head with no end yet is declined, and h11 answers it.
MAX_HEAD: Final = 16 * 1024

# h11's own grammar (h11/_abnf.py), on bytes.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VCHAR = rb"[^\x00\s]"
_FIELD_CONTENT = _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1")
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*((?:" + _FIELD_CONTENT + rb")?)[ \t]*")
_BLANK = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(rb"[0-9]{1,15}")

#: Headers whose presence sends the request to h11: framing and protocol switches the
#: fast path does not implement (chunked bodies, 100-continue, upgrades).
_DECLINED = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"))

INCOMPLETE: Final = "incomplete"
DECLINED: Final = "declined"


@dataclass(frozen=True, slots=True)
class Head:
    """One parsed request head; the body is the next ``content_length`` bytes."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # lower-cased names, as h11 gives them
    content_length: int
    close: bool  # ``Connection: close``: answer, then close
    size: int  # bytes of the head, CRLFCRLF included


def parse_head(buf: bytes | bytearray, path_prefix: bytes = b"/rpc/") -> Head | str:
    """The request head at the start of ``buf``: a :class:`Head`, :data:`INCOMPLETE`
    (read more), or :data:`DECLINED` (leave this request, and the connection, to h11)."""
    start = b"POST " + path_prefix
    if not (buf.startswith(start) if len(buf) >= len(start) else start.startswith(buf)):
        return DECLINED  # not ours: h11 may know already that it is malformed (a 400 now)
    blank = _BLANK.search(buf, 0, MAX_HEAD + 4)
    if blank is None:
        return INCOMPLETE if len(buf) < MAX_HEAD else DECLINED
    end = blank.start()
    if blank.end() - end != 3 or end == 0 or buf[end - 1] != 13:  # a bare LF somewhere
        return DECLINED
    lines = bytes(buf[: end - 1]).split(b"\r\n")
    request = _REQUEST_LINE.fullmatch(lines[0])
    if request is None or request[1] != b"POST" or not request[2].startswith(path_prefix):
        return DECLINED
    headers: list[tuple[bytes, bytes]] = []
    length = -1
    hosts = 0
    close = False
    for line in lines[1:]:
        field = _HEADER.fullmatch(line)
        if field is None:  # obs-fold, bad names or values: h11 decides
            return DECLINED
        name, value = field[1].lower(), field[2]
        if name in _DECLINED:
            return DECLINED
        if name == b"content-length":
            if length >= 0 or _DIGITS.fullmatch(value) is None:
                return DECLINED
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            if not tokens <= {b"close", b"keep-alive"}:
                return DECLINED
            close = b"close" in tokens
        headers.append((name, value))
    if length < 0 or hosts != 1:
        return DECLINED
    return Head(request[1], request[2], headers, length, close, blank.end())


class DateHeader:
    """The ``date`` value, formatted once per second (hypercorn formats it per response)."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def at(self, unix_time: float) -> bytes:
        second = int(unix_time)
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode("ascii")
        return self._value


def response_head(
    status: int, headers: list[tuple[bytes, bytes]], date: bytes, *, close: bool
) -> bytes:
    """The status line and headers as hypercorn + h11 write them (empty reason phrase)."""
    parts = [b"HTTP/1.1 %d \r\n" % status]
    parts.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
    parts.append(b"date: %s\r\nserver: hypercorn-h11\r\n" % date)
    if close:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
