"""Request ids: one per client HTTP request or WebSocket connection, in every line about it.

An incoming ``X-Request-Id`` is honoured when it is 1..128 printable ASCII
characters without spaces (``!`` to ``~``); anything else (too long, control
characters, a newline trying to start a log line of its own, non-ASCII) is
ignored and Lasso makes its own id. The front end opens a request's id with
:func:`begin` (the HTTP fast path per request, the WebSocket endpoint per
connection: the handshake's id names every call on it) and closes it with
:func:`end`.

The id lives in a :class:`contextvars.ContextVar`, so every task the request
starts (batch items, hedged attempts) sees it: trio copies the context into a
child task when it is spawned. What is stored is a small holder, and an id the
client did not send is made only when something asks (:func:`current`: a log
line, the access log, routing metadata), so a request nobody logs costs one
context-variable set and no id. A made id is a process prefix (random, so two
runs differ) and a counter: ``3f9a1c-1b``; no ``uuid4`` per request.

The response carries ``X-Request-Id`` when the request has an id by then
(:func:`peek`): the client's own, or one Lasso made because it logged something
about the request.
"""

from __future__ import annotations

import contextvars
import itertools
import os

__all__ = [
    "MAX_LENGTH",
    "RequestRef",
    "begin",
    "current",
    "end",
    "honour",
    "new_id",
    "peek",
    "ref",
    "valid",
]

MAX_LENGTH = 128
_ALLOWED = bytes(range(0x21, 0x7F))  # printable ASCII, no space
_PREFIX = os.urandom(3).hex()
_counter = itertools.count(1)


class RequestRef:
    """One request's id, made on first :meth:`get` unless the client gave one."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def get(self) -> str:
        if self.value is None:
            self.value = new_id()
        return self.value


_current: contextvars.ContextVar[RequestRef | None] = contextvars.ContextVar(
    "lasso_request_id", default=None
)

Token = contextvars.Token[RequestRef | None]


def new_id() -> str:
    """A fresh id: the process prefix and the next counter value, in hex."""
    return f"{_PREFIX}-{next(_counter):x}"


def valid(raw: bytes | None) -> str | None:
    """The client's ``X-Request-Id`` if it may be used as is, else None."""
    if raw is None or not 0 < len(raw) <= MAX_LENGTH or raw.translate(None, _ALLOWED):
        return None  # something is left once every allowed byte is deleted: refused
    return raw.decode("ascii")


def begin(raw: bytes | None = None) -> Token:
    """Open a request's id from its ``X-Request-Id`` header (None: none sent, or not
    read yet: see :func:`honour`)."""
    return _current.set(RequestRef(valid(raw)))


def honour(raw: bytes | None) -> None:
    """The current request's ``X-Request-Id``, read later than :func:`begin` (the HTTP
    fast path reads its headers once, into a dict); ignored if not valid or if an id
    was already made."""
    holder = _current.get()
    if raw is not None and holder is not None and holder.value is None:
        holder.value = valid(raw)


def end(token: Token) -> None:
    _current.reset(token)


def ref() -> RequestRef | None:
    """The current request's id holder (None outside a request), to read it later."""
    return _current.get()


def current() -> str | None:
    """The current request's id, made now if it has none yet; None outside a request."""
    holder = _current.get()
    return None if holder is None else holder.get()


def peek() -> str | None:
    """The current request's id if it has one already (never makes one)."""
    holder = _current.get()
    return None if holder is None else holder.value
