"""A minimal Redis client on a Trio stream: one pipelined connection.

Why our own. No kept Redis client runs under Trio: redis-py (kept) is asyncio or
blocking only; the Trio ones are abandoned or unfinished (redtrio 0.6.3, "Pre-Alpha",
last release 2022-06, on the equally idle respy3; omnidots/trio_redis, alpha, most
commands missing, not on PyPI). Lasso needs six commands (PING, AUTH, SELECT, GET,
SET with PX, EVALSHA/EVAL), so the smallest honest alternative is this module: the
pure codec is :mod:`lasso.shared.resp`, this is its I/O shell.

Theory of operation. Redis answers the commands of one connection in the order they
were sent, so many callers share one connection: :meth:`RedisConnection.call` sends its
command (a lock keeps each command whole and the queue in send order) and joins the FIFO
of waiters; :meth:`RedisConnection.read_replies` (a task of the owner's, see
:class:`lasso.shared.store.RedisStore`) hands each reply to the oldest waiter. A caller
that gives up (its cancel scope, e.g. ``timeout_ms``) leaves its place in the queue: its
reply is read and dropped, and the connection stays usable. A caller cancelled while its
command was half sent leaves the stream out of step, so the connection is closed.
:meth:`RedisConnection.stalled` tells a Redis that stopped answering from a busy one.
Deadlines are the caller's cancel scopes; nothing here has a timeout of its own.
"""

from __future__ import annotations

from collections import deque

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
_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


class RedisUnavailable(Exception):
    """The connection failed (refused, reset, closed, garbage): use local state."""


class _Waiter:
    """One sent command's place in the reply queue."""

    __slots__ = ("done", "error", "reply", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.done = trio.Event()
        self.reply: Reply = None
        self.error: str | None = None


class RedisConnection(trio.abc.AsyncResource):
    """One open connection; see the module docstring."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._parser = ReplyParser()
        self._send_lock = trio.Lock()
        self._waiters: deque[_Waiter] = deque()
        self._broken: str | None = None

    def is_broken(self) -> bool:
        """Closed, or out of step with its replies: never to be used again."""
        return self._broken is not None

    def stalled(self, now: float, after_s: float) -> bool:
        """Whether the oldest command still unanswered went out ``after_s`` or more ago."""
        return bool(self._waiters) and now - self._waiters[0].sent_at >= after_s

    async def call(self, *args: bytes | str | int) -> Reply:
        """The reply to ``args`` (an error reply is returned, not raised). Needs
        :meth:`read_replies` running. Raises :class:`RedisUnavailable` if the connection
        is (or becomes) unusable."""
        async with self._send_lock:
            self._check()
            # Cancelled here costs nothing; once past it, a Cancelled from send_all means
            # bytes may be out (no run-loop turn between: a deadline cannot land before).
            await trio.lowlevel.checkpoint_if_cancelled()
            waiter = _Waiter(trio.current_time())
            self._waiters.append(waiter)
            try:
                await self._stream.send_all(encode(*args))
            except _NETWORK_ERRORS as exc:
                self.break_now(str(exc) or type(exc).__name__)
            except trio.Cancelled:
                self.break_now("a command was cut off while sent")  # out of step from here
                raise
        await waiter.done.wait()  # cancelled: the reply, when it comes, is dropped
        if waiter.error is not None:
            raise RedisUnavailable(waiter.error)
        return waiter.reply

    async def read_replies(self) -> None:
        """Hand every reply to its waiter until the connection fails; then raise
        :class:`RedisUnavailable` (every waiter left is woken with the same error)."""
        try:
            while True:
                reply = self._parser.next()
                if reply is INCOMPLETE:
                    data = await self._stream.receive_some(_RECEIVE_BYTES)
                    if not data:
                        raise RedisUnavailable("connection closed by the server")
                    self._parser.feed(data)
                    continue
                if not self._waiters:
                    raise RedisUnavailable("a reply nobody asked for")
                waiter = self._waiters.popleft()
                waiter.reply = reply  # type: ignore[assignment]
                waiter.done.set()
        except _NETWORK_ERRORS as exc:
            self.break_now(self._broken or str(exc) or type(exc).__name__)
        except ProtocolError as exc:
            self.break_now(f"protocol error: {exc}")
        except RedisUnavailable as exc:
            self.break_now(str(exc))
        raise RedisUnavailable(self._broken)

    async def call_alone(self, *args: bytes | str | int) -> Reply:
        """One command answered inline, while :meth:`read_replies` is not running (the
        handshake: AUTH, SELECT, PING; tests)."""
        self._check()
        try:
            await self._stream.send_all(encode(*args))
            while (reply := self._parser.next()) is INCOMPLETE:
                data = await self._stream.receive_some(_RECEIVE_BYTES)
                if not data:
                    raise RedisUnavailable("connection closed by the server")
                self._parser.feed(data)
        except _NETWORK_ERRORS as exc:
            raise RedisUnavailable(str(exc) or type(exc).__name__) from exc
        except ProtocolError as exc:
            raise RedisUnavailable(f"protocol error: {exc}") from exc
        return reply  # type: ignore[return-value]

    def _check(self) -> None:
        if self._broken is not None:
            raise RedisUnavailable(self._broken)

    def break_now(self, reason: str) -> None:
        """Close at once (no await: callers may be being cancelled); wake every waiter."""
        if self._broken is None:
            self._broken = reason
        if isinstance(self._stream, trio.SocketStream):
            self._stream.socket.close()  # a blocked receive_some raises ClosedResourceError
        while self._waiters:
            waiter = self._waiters.popleft()
            waiter.error = self._broken
            waiter.done.set()

    async def aclose(self) -> None:
        self.break_now("closed")
        await trio.aclose_forcefully(self._stream)


async def connect(address: RedisAddress) -> RedisConnection:
    """Open a connection, authenticate and select the database. Raises
    :class:`RedisUnavailable` when that fails."""
    try:
        stream = await trio.open_tcp_stream(address.host, address.port)
    except OSError as exc:
        raise RedisUnavailable(exc.strerror or str(exc)) from exc
    stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
    connection = RedisConnection(stream)
    try:
        if address.password is not None:
            auth = [address.username] if address.username else []
            _check(await connection.call_alone("AUTH", *auth, address.password), "AUTH")
        if address.db:
            _check(await connection.call_alone("SELECT", address.db), "SELECT")
        _check(await connection.call_alone("PING"), "PING")
    except BaseException:
        await connection.aclose()
        raise
    return connection


def _check(reply: Reply, command: str) -> None:
    if isinstance(reply, ReplyError):
        # The server's own words (never our arguments: AUTH's would be the password).
        raise RedisUnavailable(f"{command} refused: {reply.code}")
