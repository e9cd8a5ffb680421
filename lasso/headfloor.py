"""Monotonic head: what the gateway answers never goes below what it already told.

:func:`keep_head` runs on every answer of an unpinned route (a route pinned to
one provider gets that provider's own view). The chain's
:class:`~lasso.core.consistency.HeadFloor` holds the highest head answered or
delivered (``newHeads`` raise it from :mod:`lasso.subscriptions.feed`):

    eth_blockNumber below the floor       answered with the floor, as a node writes it
    eth_getBlockByNumber("latest") below  the floor block fetched by number (a provider
                                          at it answers: see lasso.emptycheck), within
                                          the same deadline; if none can, the block
                                          that was answered is returned, never an
                                          invented one
    either at or above the floor          answered as it is; the floor follows

``pending`` is left alone: a pending block is not a head (anvil numbers it head + 1
with no hash), and replacing it with a mined block would change what it is.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.block_target import TargetKind, block_target
from lasso.core.consistency import block_number_of
from lasso.core.jsonrpc import Call, encode_json
from lasso.core.router import Strategy
from lasso.dispatch import Outcome, dispatch
from lasso.errors import LassoError

__all__ = ["keep_head"]


async def keep_head(
    chain: ChainRuntime,
    call: Call,
    result: bytes,
    *,
    strategy: Strategy | None,
    transport: str | None,
    outcome: Outcome,
    started_at: float,
) -> bytes:
    """``result`` (an unpinned route's answer to ``call``), kept at or above the floor."""
    if call.method == "eth_blockNumber":
        return chain.floor.block_number(result)
    if call.method != "eth_getBlockByNumber":
        return result
    target = block_target(call.method, call.params)
    if target.kind is not TargetKind.TAG or target.tag != "latest":
        return result
    number = block_number_of(result)
    wanted = None if number is None else chain.floor.below(number)
    if wanted is None:
        return result
    by_number = _by_number(call, wanted)
    plan = chain.plan(
        call.method,
        trio.current_time(),
        strategy=strategy,
        provider=None,
        transport=transport,
        params=by_number.params,
    )
    try:
        again = await dispatch(chain, by_number, plan, outcome, started_at=started_at)
    except LassoError:
        return result
    return again if block_number_of(again) == wanted else result


def _by_number(call: Call, number: int) -> Call:
    params: list[Any] = msgspec.json.decode(call.params)
    params[0] = hex(number)
    return Call(call.method, encode_json(params), call.id)
