"""Gateway-served stateful filters: the six filter methods, answered as geth answers them.

``eth_newFilter`` / ``eth_newBlockFilter`` / ``eth_newPendingTransactionFilter`` install
a filter in the pure :class:`~lasso.core.filter_table.FilterTable` under a gateway-issued
id (geth's form) and start its feed (:mod:`lasso.filters.feeds`) if it is the first on
it; ``eth_getFilterChanges`` takes what the feed delivered since the last poll (block
hashes, transaction hashes, or the matching logs, ``removed: true`` ones included);
``eth_getFilterLogs`` runs the filter's criteria as an ``eth_getLogs`` through the
gateway's normal path (splitting and failover apply); ``eth_uninstallFilter`` answers
``true`` or ``false``. An unknown, expired or overflowed id gets geth's -32000 "filter
not found"; past ``[filters]`` ``max_per_client`` (by remote address) or ``max_total``
a new filter gets -32005 "filter limit reached" (EIP-1474's "limit exceeded", HTTP 200,
so a client sees a JSON-RPC error it can show, not a transport failure).

A chain with no provider that has a ``ws_url`` has no stream to feed filters from: its
filters are cursors read over HTTP at each poll (:mod:`lasso.filters.polled`). So is a
new block or log filter when its stream cannot start (every WebSocket down, or the
chain's upstream subscription budget full); a pending-transaction filter then gets the
stream's error. Filters already installed on a stream are fed again by its failover.

:func:`open_filters` runs the idle-expiry sweep and hooks the service into the gateway.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

import msgspec
import trio

from lasso.config.schema import FilterConfig
from lasso.core.filter_params import (
    FilterParamsError,
    parse_filter_id,
    parse_new_filter,
)
from lasso.core.filter_table import (
    Change,
    FilterKind,
    FilterLimits,
    FilterTable,
    FilterTableStatistics,
    LimitReached,
)
from lasso.core.jsonrpc import Call
from lasso.core.subs import InvalidSubscription, SubscriptionRequest, parse_subscribe_params
from lasso.errors import (
    FilterError,
    FilterLimit,
    InvalidParams,
    LassoError,
    LocalCapacity,
    NoProviderAvailable,
)
from lasso.filters.feeds import FeedKey, Feeds
from lasso.filters.polled import PolledFeeds, PolledKey
from lasso.gateway import Forward, Gateway, Target
from lasso.subscriptions.hub import SubscriptionHub

NOT_FOUND = "filter not found"
NO_PENDING = "pending transaction filters need a provider with a WebSocket (ws_url) on this chain"
_UNKNOWN_CLIENT = "(unknown address)"
_NEW_HEADS = parse_subscribe_params(["newHeads"])


def limits_of(config: FilterConfig) -> FilterLimits:
    return FilterLimits(
        idle_s=config.idle_timeout_ms / 1000,
        max_per_client=config.max_per_client,
        max_total=config.max_total,
        max_buffered=config.max_buffered_changes,
    )


class FilterService:
    """The gateway's filters; see the module docstring."""

    def __init__(
        self, gateway: Gateway, hub: SubscriptionHub, rng: random.Random | None = None
    ) -> None:
        self.gateway = gateway
        self.table = FilterTable()
        self.rng = rng or random.SystemRandom()
        self.feeds = Feeds(hub, self._deliver, self._broke, self._in_use)
        self.polled = PolledFeeds()

    def statistics(self) -> FilterTableStatistics:
        return self.table.statistics()

    def limits(self) -> FilterLimits:
        return limits_of(self.gateway.settings.filters)  # a reload applies at the next call

    async def handle(self, target: Target, call: Call, forward: Forward) -> bytes:
        try:
            return await self._handle(target, call, forward)
        except FilterParamsError as exc:
            if exc.code == -32602:
                raise InvalidParams(exc.message) from None
            raise FilterError(exc.message) from None

    async def _handle(self, target: Target, call: Call, forward: Forward) -> bytes:
        method = call.method
        if method == "eth_newFilter":
            criteria = parse_new_filter(call.params)
            span = (criteria.first, criteria.last)
            request = criteria.request
            return await self._install(target, FilterKind.LOGS, request, forward, span, call.params)
        if method == "eth_newBlockFilter":
            _no_arguments(call.params)
            return await self._install(target, FilterKind.BLOCKS, _NEW_HEADS, forward)
        if method == "eth_newPendingTransactionFilter":
            request = _pending_request(call.params)
            return await self._install(target, FilterKind.PENDING, request, forward)
        fid = parse_filter_id(call.params)
        now = trio.current_time()
        limits = self.limits()
        if method == "eth_getFilterChanges":
            feed = self.table.feed_of(fid, now, limits.idle_s)
            if isinstance(feed, PolledKey):
                cap = target.chain.config.max_logs_block_range
                self._deliver(feed, await self.polled.catch_up(feed, forward, cap))
            polled = self.table.poll(fid, now, limits.idle_s)
            if not polled.found:
                raise FilterError(NOT_FOUND)
            return b"[" + b",".join(polled.changes) + b"]"
        if method == "eth_uninstallFilter":
            found, released = self.table.uninstall(fid)
            self._release(released)
            return b"true" if found else b"false"
        return await self._filter_logs(fid, now, limits, forward)  # eth_getFilterLogs

    async def _filter_logs(
        self, fid: str, now: float, limits: FilterLimits, forward: Forward
    ) -> bytes:
        criteria = self.table.criteria(fid, now, limits.idle_s)
        if criteria is None:  # geth: only a log filter has logs
            raise FilterError(NOT_FOUND)
        return await forward(Call("eth_getLogs", criteria, b"1"))

    async def _install(
        self,
        target: Target,
        kind: FilterKind,
        request: SubscriptionRequest,
        forward: Forward,
        span: tuple[int | None, int | None] = (None, None),
        criteria: bytes | None = None,
    ) -> bytes:
        if any(p.config.ws_url for p in target.chain.providers.values()):
            try:
                key: FeedKey = (target.chain, target.provider, request.key)
                return await self._install_on(key, target, kind, request, forward, span, criteria)
            except (NoProviderAvailable, LocalCapacity):
                if kind is FilterKind.PENDING:
                    raise
                # No stream can start now (every WebSocket down, or the chain's upstream
                # budget full): this filter is read over HTTP at each poll instead.
        if kind is FilterKind.PENDING:
            raise FilterError(NO_PENDING)
        polled = self.polled.new_key()
        return await self._install_on(polled, target, kind, request, forward, span, criteria)

    async def _install_on(
        self,
        key: Hashable,
        target: Target,
        kind: FilterKind,
        request: SubscriptionRequest,
        forward: Forward,
        span: tuple[int | None, int | None],
        criteria: bytes | None,
    ) -> bytes:
        client: Hashable = target.client or _UNKNOWN_CLIENT
        now = trio.current_time()
        limits = self.limits()
        self._release(self.table.expire(now, limits.idle_s))
        try:
            fid, _ = self.table.install(kind, key, client, now, limits, self.rng, span, criteria)
        except LimitReached as exc:
            raise FilterLimit(str(exc)) from None
        try:
            if isinstance(key, PolledKey):
                await self.polled.start(key, request.log_filter, forward, end=span[1])
            else:
                assert isinstance(key, tuple)
                await self.feeds.ensure(key, target, request, client)
        except BaseException:
            self._release(self.table.uninstall(fid)[1])
            raise
        return b'"%b"' % fid.encode()

    # -- the feeds' callbacks --------------------------------------------------

    def _deliver(self, key: Hashable, changes: list[Change]) -> None:
        self._release(self.table.deliver(key, changes, self.limits().max_buffered))

    def _broke(self, key: FeedKey, _message: str) -> None:
        self._release(self.table.drop_feed(key))

    def _in_use(self, key: FeedKey) -> bool:
        return self.table.filters_of(key) > 0

    def _release(self, feeds: list[Hashable]) -> None:
        for key in feeds:
            if isinstance(key, PolledKey):
                self.polled.release(key)
            else:
                assert isinstance(key, tuple)
                self.feeds.release(key)

    def sweep(self) -> None:
        """Drop the filters idle past ``idle_timeout_ms`` and release their streams."""
        self._release(self.table.expire(trio.current_time(), self.limits().idle_s))

    async def run_sweeper(self, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            await trio.sleep(min(max(self.limits().idle_s / 4, 0.05), 5.0))
            self.sweep()


def _no_arguments(params: bytes) -> None:
    if params not in (b"", b"null", b"[]"):
        raise InvalidParams("too many arguments, want at most 0")


def _pending_request(params: bytes) -> SubscriptionRequest:
    """``eth_newPendingTransactionFilter [fullTx?]`` (geth takes an optional boolean)."""
    try:
        args = msgspec.json.decode(params) if params else []
    except msgspec.DecodeError:
        raise InvalidParams("invalid argument 0: not JSON") from None
    if args is None:
        args = []
    if not isinstance(args, list) or len(args) > 1:
        raise InvalidParams("too many arguments, want at most 1")
    try:
        return parse_subscribe_params(["newPendingTransactions", *args])
    except InvalidSubscription as exc:
        raise InvalidParams(f"invalid argument 0: {exc}") from None


@asynccontextmanager
async def open_filters(
    gateway: Gateway, hub: SubscriptionHub, rng: random.Random | None = None
) -> AsyncIterator[FilterService]:
    """Serve the gateway's filters until the block exits."""
    service = FilterService(gateway, hub, rng)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run_sweeper)
        gateway.filters = service
        try:
            yield service
        finally:
            gateway.filters = None
            service.feeds.release_all()
            nursery.cancel_scope.cancel(reason="filters closing")


__all__ = ["FilterService", "LassoError", "limits_of", "open_filters"]
