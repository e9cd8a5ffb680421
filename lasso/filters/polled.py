"""Filters on a chain with no WebSocket provider: each poll reads what is new over HTTP.

Theory of operation. Without a ``ws_url`` there is no upstream stream to feed filters
from, so a filter is a cursor: the last block it has covered. ``eth_new*Filter`` sets it
to the chain's head (``eth_blockNumber`` through the gateway); each
``eth_getFilterChanges`` reads the head again and turns the blocks after the cursor into
changes before the table is polled: the block hashes (``eth_getBlockByNumber``), or the
matching logs (one ``eth_getLogs`` over the range, through the gateway's normal path, so
splitting and failover apply). At most :data:`MAX_BLOCKS_PER_POLL` blocks (and at most
the chain's ``max_logs_block_range``) are read per poll, the rest at the next one, so a
filter polled rarely costs bounded upstream work per poll and loses nothing. Every
request goes through the gateway and so to any healthy provider: a provider failing
loses nothing either.

Limits (the WebSocket streams have none of these): no ``removed: true`` logs on a reorg
(the range is read once, on the branch current then), and no pending-transaction
filters (a node does not list its pool over HTTP in a standard way): those get -32000.
"""

from __future__ import annotations

from collections.abc import Hashable

import msgspec
import trio

from lasso.core.filter_table import Change
from lasso.core.jsonrpc import Call
from lasso.core.subs import Delivery, LogFilter, SubscriptionKind, get_logs_params
from lasso.core.subs.items import parse_quantity
from lasso.errors import UpstreamProtocolError
from lasso.filters.feeds import to_change
from lasso.gateway import Forward

__all__ = ["MAX_BLOCKS_PER_POLL", "PolledFeeds", "PolledKey"]

MAX_BLOCKS_PER_POLL = 1024
_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode


class PolledKey(msgspec.Struct, frozen=True):
    """A polled filter's own feed key (polled filters share nothing)."""

    number: int


class _Cursor:
    __slots__ = ("end", "last", "lock", "log_filter")

    def __init__(self, log_filter: LogFilter | None, last: int, end: int | None) -> None:
        self.log_filter = log_filter
        self.last = last
        self.end = end  # a log filter's toBlock: nothing after it is read
        self.lock = trio.Lock()  # one catch-up at a time per filter


class PolledFeeds:
    """One cursor per polled filter (its feed key is its own); see the module docstring."""

    def __init__(self) -> None:
        self._cursors: dict[Hashable, _Cursor] = {}
        self._made = 0

    def new_key(self) -> PolledKey:
        self._made += 1
        return PolledKey(self._made)

    async def start(
        self,
        key: Hashable,
        log_filter: LogFilter | None,
        forward: Forward,
        end: int | None = None,
    ) -> None:
        """The filter covers the chain up to its head now: changes start after it.
        ``log_filter``: None for a block filter; ``end``: a log filter's toBlock."""
        self._cursors[key] = _Cursor(log_filter, await head(forward), end)

    def release(self, key: Hashable) -> None:
        self._cursors.pop(key, None)

    async def catch_up(
        self, key: Hashable, forward: Forward, max_blocks: int | None = None
    ) -> list[Change]:
        """The changes of the blocks after the cursor, up to the head (at most
        :data:`MAX_BLOCKS_PER_POLL` of them, and at most ``max_blocks``: the chain's
        ``max_logs_block_range``, which the range's ``eth_getLogs`` must keep to);
        the cursor moves past them."""
        bound = MAX_BLOCKS_PER_POLL if max_blocks is None else min(max_blocks, MAX_BLOCKS_PER_POLL)
        cursor = self._cursors.get(key)
        if cursor is None:
            return []
        async with cursor.lock:
            top = min(await head(forward), cursor.last + bound)
            if cursor.end is not None:
                top = min(top, cursor.end)
            blocks = range(cursor.last + 1, top + 1)
            if not blocks:
                return []
            if cursor.log_filter is not None:
                changes = await _logs(cursor.log_filter, blocks, forward)
            else:
                changes = await _block_hashes(blocks, forward)
            cursor.last = top
            return changes


async def head(forward: Forward) -> int:
    number = parse_quantity(_decode(await forward(Call("eth_blockNumber", b"[]", b"1"))))
    if number is None:
        raise UpstreamProtocolError("eth_blockNumber did not answer a block number")
    return number


async def _logs(log_filter: LogFilter, blocks: range, forward: Forward) -> list[Change]:
    params = _encode(get_logs_params(log_filter, blocks))
    try:
        found = _decode(await forward(Call("eth_getLogs", params, b"1")), type=list[msgspec.Raw])
    except msgspec.ValidationError:
        raise UpstreamProtocolError("eth_getLogs did not answer a list") from None
    changes: list[Change] = []
    for raw in found:  # the node's own bytes are what the poll returns
        log = _decode(raw)
        change = to_change(SubscriptionKind.LOGS, Delivery(log, bytes(raw)))
        if change is not None:
            changes.append(change)
    return changes


async def _block_hashes(blocks: range, forward: Forward) -> list[Change]:
    """One read per block, in order (a poll usually covers a block or two)."""
    changes: list[Change] = []
    for number in blocks:
        params = b'["%b",false]' % hex(number).encode()
        block = _decode(await forward(Call("eth_getBlockByNumber", params, b"1")))
        if not isinstance(block, dict) or not isinstance(block.get("hash"), str):
            raise UpstreamProtocolError(f"block {number} is not available yet")
        changes.append(Change(block["hash"], _encode(block["hash"]), number))
    return changes
