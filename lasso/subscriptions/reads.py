"""The reads a subscription stream makes over HTTP: heads, blocks and logs.

Every read goes through the gateway's own routing (priority order, breakers,
failover), preferring one provider when asked: the one that now serves the
stream has what the old one never sent. A stream pinned to one provider reads
only from it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.jsonrpc import Call, encode_json
from lasso.core.router import Strategy
from lasso.core.subs import LogFilter, get_logs_params
from lasso.dispatch import Outcome, dispatch
from lasso.errors import LassoError

_decode = msgspec.json.decode
_FETCH_CONCURRENCY = 8


class ChainReads:
    """One stream's reads of its chain."""

    def __init__(self, chain: ChainRuntime, pinned: str | None) -> None:
        self.chain = chain
        self.pinned = pinned

    async def head(self, prefer: str | None) -> int:
        """The chain's block number, as ``prefer`` (or routing) sees it."""
        return int(_decode(await self.get("eth_blockNumber", [], prefer)), 16)

    async def latest_block(self, prefer: str | None) -> Any:
        return _decode(await self.get("eth_getBlockByNumber", ["latest", False], prefer))

    async def logs(self, log_filter: LogFilter, blocks: range, prefer: str | None) -> Any:
        """``eth_getLogs`` over ``blocks`` (a non-empty range) with the stream's filter."""
        return _decode(await self.get("eth_getLogs", get_logs_params(log_filter, blocks), prefer))

    async def blocks(self, numbers: range, prefer: str | None = None) -> list[dict[str, Any]]:
        """``eth_getBlockByNumber(n, false)`` for each number, a few at a time, in order.

        Raises the first read's error if any fails: the whole range is asked again later.
        """
        found: dict[int, Any] = {}
        failures: list[LassoError] = []
        limiter = trio.CapacityLimiter(_FETCH_CONCURRENCY)

        async def one(number: int) -> None:
            async with limiter:
                if failures:
                    return
                try:
                    raw = await self.get("eth_getBlockByNumber", [hex(number), False], prefer)
                except LassoError as exc:
                    failures.append(exc)
                    return
                found[number] = _decode(raw)

        async with trio.open_nursery() as nursery:
            for number in numbers:
                nursery.start_soon(one, number)
        if failures:
            raise failures[0]
        return [found[n] for n in numbers if isinstance(found.get(n), dict)]

    async def get(self, method: str, params: list[Any], prefer: str | None = None) -> bytes:
        """One read: the preferred provider first, then normal routing."""
        call = Call(method, encode_json(params), b"0")
        if self.pinned is not None:
            prefer = self.pinned
        if prefer is not None:
            try:
                return await self._dispatch(call, prefer)
            except LassoError:
                if self.pinned is not None:
                    raise
        return await self._dispatch(call, None)

    async def _dispatch(self, call: Call, provider: str | None) -> bytes:
        now = trio.current_time()
        plan = self.chain.plan(
            call.method, now, strategy=Strategy.PRIORITY, provider=provider, params=call.params
        )
        return await dispatch(self.chain, call, plan, Outcome())
