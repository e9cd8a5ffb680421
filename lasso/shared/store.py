"""The Redis-backed :class:`lasso.sharedstate.SharedStore`: ``gateway.shared`` when
``[shared] redis_url`` is set.

Theory of operation. :meth:`RedisStore.run` (a service in the gateway's nursery) owns
the one connection: it connects, reads the replies (callers share the connection,
pipelined: :mod:`lasso.shared.client`) until the connection fails, and reconnects with
jittered capped backoff (:class:`lasso.core.backoff.Backoff`). Every call has the
``timeout_ms`` deadline. A call never raises into a request: while Redis
is unreachable, or when a call fails or takes too long, it answers ``None`` (reads,
token buckets: the caller uses its local state) or drops the write.

An outage is logged once when it starts (the first failure) and once when it ends (the
reconnect), never per request. A call past its deadline falls back alone while Redis
keeps answering (busy is not down); when the oldest command has had no reply for half
the deadline, Redis is hung: the connection is closed and that is an outage too.

Keys are ``key_prefix`` + the caller's key, so several deployments can share a Redis.
"""

from __future__ import annotations

import logging
import math
import random

import msgspec
import trio

from lasso.config.schema import SharedConfig
from lasso.core.backoff import Backoff
from lasso.shared.client import (
    RedisAddress,
    RedisConnection,
    RedisUnavailable,
    connect,
    parse_redis_url,
)
from lasso.shared.resp import Reply, ReplyError
from lasso.shared.tokens import TAKE_SCRIPT, TAKE_SHA

__all__ = ["RECONNECT", "RedisStore", "SharedStatistics"]

log = logging.getLogger("lasso.shared")

#: Reconnect pacing: 0.1 s, doubling, at most 5 s (jittered shorter).
RECONNECT = Backoff(base_s=0.1, cap_s=5.0)
#: Deadline of one connection attempt (connect, AUTH, SELECT, PING).
CONNECT_TIMEOUT_S = 1.0


class SharedStatistics(msgspec.Struct, frozen=True):
    """The store's counters, for ``/health`` and tests."""

    available: bool
    connects: int  # connections opened (the first, then each reconnect)
    outages: int  # times the connection was lost or could not be opened
    calls: int
    fallbacks: int  # calls answered None or dropped: down, failed or too slow
    error_replies: int  # error replies (WRONGTYPE, OOM, ...): answered None too


class RedisStore:
    """Shared state in Redis; see the module docstring."""

    def __init__(
        self,
        address: RedisAddress,
        *,
        timeout_s: float,
        key_prefix: str = "",
        backoff: Backoff = RECONNECT,
        rng: random.Random | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.key_prefix = key_prefix
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._connection: RedisConnection | None = None
        self._down_since: float | None = None
        self._seen_errors: set[str] = set()
        self.connects = self.outages = self.calls = self.fallbacks = self.error_replies = 0

    @classmethod
    def from_config(cls, config: SharedConfig) -> RedisStore:
        if config.redis_url is None:
            raise ValueError("[shared] redis_url is not set")
        return cls(
            parse_redis_url(config.redis_url),
            timeout_s=config.timeout_ms / 1000,
            key_prefix=config.key_prefix,
        )

    @property
    def available(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_broken()

    # -- the connection's owner -------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected until cancelled. Started once the first attempt is over (connected
        or not), so a gateway that starts with Redis up shares from its first request."""
        attempt = 0
        try:
            while True:
                try:
                    with trio.fail_after(CONNECT_TIMEOUT_S):
                        connection = await connect(self.address)
                except (RedisUnavailable, OSError, trio.TooSlowError) as exc:
                    self._went_down(_reason(exc))
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
                    await trio.sleep(self._backoff.delay(attempt, self._rng))
                    attempt += 1
                    continue
                attempt = 0
                self._came_up(connection)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                try:
                    await connection.read_replies()  # until the connection fails
                except RedisUnavailable as exc:
                    self._fail(connection, str(exc))
        finally:
            if self._connection is not None:
                await trio.aclose_forcefully(self._connection)
                self._connection = None

    def _came_up(self, connection: RedisConnection) -> None:
        self._connection = connection
        self.connects += 1
        if self._down_since is None:
            log.info("shared state: connected to Redis at %s", self.address)
        else:
            down_s = trio.current_time() - self._down_since
            log.warning(
                "shared state: Redis at %s reachable again after %.1f s; shared state in use",
                self.address,
                down_s,
            )
        self._down_since = None

    def _went_down(self, reason: str) -> None:
        """Record a failure; only the first of an outage is logged."""
        if self._down_since is not None:
            return
        self._down_since = trio.current_time()
        self.outages += 1
        log.warning(
            "shared state: Redis at %s unreachable (%s); using local state, reconnecting",
            self.address,
            reason,
        )

    def _fail(self, connection: RedisConnection, reason: str) -> None:
        if connection is not self._connection:
            return  # an old connection's late failure
        self._connection = None
        connection.break_now(reason)  # its reader ends: run() reconnects
        self._went_down(reason)

    # -- calls -----------------------------------------------------------------

    async def _call(self, *args: bytes | str | int) -> Reply | None:
        self.calls += 1
        connection = self._connection
        if connection is None or connection.is_broken():
            self.fallbacks += 1
            return None
        reply: Reply | None = None
        with trio.move_on_after(self.timeout_s) as scope:
            try:
                reply = await connection.call(*args)
            except RedisUnavailable as exc:
                self._fail(connection, str(exc))
                self.fallbacks += 1
                return None
        if scope.cancelled_caught:
            self.fallbacks += 1
            # Busy (many commands queued) is not down; no reply at all for half the deadline is.
            if connection.is_broken() or connection.stalled(
                trio.current_time(), self.timeout_s / 2
            ):
                ms = round(self.timeout_s * 1000)
                self._fail(connection, f"no reply within {ms} ms")
            return None
        return reply

    def _error(self, reply: ReplyError) -> None:
        self.error_replies += 1
        self.fallbacks += 1
        if reply.code not in self._seen_errors:  # once per kind, not per request
            self._seen_errors.add(reply.code)
            log.warning("shared state: Redis answered an error (%s); using local state", reply)

    async def get_bytes(self, key: str) -> bytes | None:
        reply = await self._call("GET", self.key_prefix + key)
        if isinstance(reply, ReplyError):
            self._error(reply)
            return None
        return reply if isinstance(reply, bytes) else None

    async def set_bytes(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        args: tuple[str | bytes | int, ...] = ("SET", self.key_prefix + key, value)
        if ttl_s is not None:
            args += ("PX", max(1, math.ceil(ttl_s * 1000)))
        reply = await self._call(*args)
        if isinstance(reply, ReplyError):
            self._error(reply)

    async def take_tokens(self, key: str, *, rate: float, burst: int, cost: int) -> float | None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        args = (1, self.key_prefix + key, repr(float(rate)), burst, cost)
        reply = await self._call("EVALSHA", TAKE_SHA, *args)
        if isinstance(reply, ReplyError) and reply.code == "NOSCRIPT":
            reply = await self._call("EVAL", TAKE_SCRIPT, *args)  # loads it for next time
        if isinstance(reply, ReplyError):
            self._error(reply)
            return None
        if not isinstance(reply, bytes):
            return None
        try:
            wait_ms = float(reply)
        except ValueError:
            return None
        return max(0.0, wait_ms / 1000)

    def statistics(self) -> SharedStatistics:
        return SharedStatistics(
            available=self.available,
            connects=self.connects,
            outages=self.outages,
            calls=self.calls,
            fallbacks=self.fallbacks,
            error_replies=self.error_replies,
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return f"no connection within {CONNECT_TIMEOUT_S:g} s"
    return str(exc) or type(exc).__name__
