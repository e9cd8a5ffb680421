"""A minimal Redis client on a Trio stream: one connection, one command at a time.

Why our own. No kept Redis client runs under Trio: redis-py (kept) is asyncio or
blocking only; the Trio ones are abandoned or unfinished (redtrio 0.6.3, "Pre-Alpha",
last release 2022-06, on the equally idle respy3; omnidots/trio_redis, alpha, most
commands missing, not on PyPI). Lasso needs five commands (PING, AUTH, SELECT, GET,
SET with PX, EVALSHA/EVAL), so the smallest honest alternative is this module: the
pure codec is :mod:`lasso.shared.resp`, this is its I/O shell.

A :class:`RedisConnection` runs one command at a time (a lock); a caller that gives up
(its cancel scope, e.g. the store's ``timeout_ms``) after the command went out leaves
the connection not knowing where its replies are, so it is closed (``broken``): the
owner (:class:`lasso.shared.store.RedisStore`) opens a new one. Deadlines are the
caller's cancel scopes; nothing here has a timeout of its own.
"""

from __future__ import annotations

import trio

from lasso.shared.address import RedisAddress, parse_redis_url
from lasso.shared.resp import (
    INCOMPLETE,
    ProtocolError,
    Reply,
    ReplyError,
    ReplyParser,
    encode,
)

__all__ = ["RedisAddress", "RedisConnection", "RedisUnavailable", "connect", "parse_redis_url"]

_RECEIVE_BYTES = 65536


class RedisUnavailable(Exception):
    """The connection failed (refused, reset, closed, garbage): use local state."""


class RedisConnection(trio.abc.AsyncResource):
    """One open connection; :meth:`call` sends a command and returns its reply."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._parser = ReplyParser()
        self._lock = trio.Lock()
        self._broken = False

    def is_broken(self) -> bool:
        """Closed, or out of step with its replies: never to be used again."""
        return self._broken

    def mark_broken(self) -> None:
        self._broken = True

    async def call(self, *args: bytes | str | int) -> Reply:
        """The reply to ``args`` (an error reply is returned, not raised). Raises
        :class:`RedisUnavailable` if the connection is (or becomes) unusable."""
        async with self._lock:
            if self._broken:
                raise RedisUnavailable("connection closed")
            sent = False
            try:
                await self._stream.send_all(encode(*args))
                sent = True
                return await self._reply()
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._break()
                raise RedisUnavailable(str(exc) or type(exc).__name__) from exc
            except ProtocolError as exc:
                await self._break()
                raise RedisUnavailable(f"protocol error: {exc}") from exc
            except RedisUnavailable:  # closed by the server
                await self._break()
                raise
            except trio.Cancelled:
                if sent or self._parser.buffered:  # replies out of step from now on
                    self._break_now()
                raise

    async def _reply(self) -> Reply:
        while True:
            reply = self._parser.next()
            if reply is not INCOMPLETE:
                return reply  # type: ignore[return-value]
            data = await self._stream.receive_some(_RECEIVE_BYTES)
            if not data:
                raise RedisUnavailable("connection closed by the server")
            self._parser.feed(data)

    def _break_now(self) -> None:
        self._broken = True
        if isinstance(self._stream, trio.SocketStream):
            self._stream.socket.close()  # no await: we are being cancelled

    async def _break(self) -> None:
        self._broken = True
        await trio.aclose_forcefully(self._stream)

    async def aclose(self) -> None:
        await self._break()


async def connect(address: RedisAddress) -> RedisConnection:
    """Open a connection, authenticate and select the database. Raises
    :class:`RedisUnavailable` (or ``OSError``) when that fails."""
    try:
        stream = await trio.open_tcp_stream(address.host, address.port)
    except OSError as exc:
        raise RedisUnavailable(exc.strerror or str(exc)) from exc
    stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
    connection = RedisConnection(stream)
    try:
        if address.password is not None:
            auth = [address.username] if address.username else []
            _check(await connection.call("AUTH", *auth, address.password), "AUTH")
        if address.db:
            _check(await connection.call("SELECT", address.db), "SELECT")
        _check(await connection.call("PING"), "PING")
    except BaseException:
        await connection.aclose()
        raise
    return connection


def _check(reply: Reply, command: str) -> None:
    if isinstance(reply, ReplyError):
        # The server's own words (never our arguments: AUTH's would be the password).
        raise RedisUnavailable(f"{command} refused: {reply.code}")
