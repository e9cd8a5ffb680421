"""``eth_getLogs`` beyond provider limits: the I/O shell around :mod:`lasso.core.logs_split`.

Theory of operation
-------------------
:func:`get_logs` answers every ``eth_getLogs`` (the gateway's one hook). It plans
the request as any other and looks at two limits: the chain's global cap
(``max_logs_block_range``, chain key else ``[routing]``) and the narrowest range
limit among the planned providers (configured or learned, ``logs_range_limit``).

* Neither applies, or the range is within both: the request goes whole, on the
  plan already made: exactly today's path, same upstream call, same bytes.
* Wider than the cap: -32602 (``cap_error``), never sent upstream.
* Wider than a provider limit: the range is resolved to numbers (``latest``
  against the consensus head, else one ``eth_blockNumber`` through the normal
  path; the top is clamped to that head, as a node clamps it), split into chunks
  within the limit, and each chunk is planned and dispatched on its own, so it
  fails over like any request. At most ``routing.logs_chunk_concurrency`` chunks
  of one request are in flight. The raw results are merged in chain order.
* A range refusal (RANGE_TOO_LARGE / RESULT_TOO_LARGE) from any attempt, whole
  or chunk, teaches the provider's limit (``refusal``: stated, else halved; a
  result-size refusal is kept for this request only). If no provider served
  that range, it is split narrower and goes on; a capability answer never costs
  a breaker failure (dispatch already treats it so).

Never a silent partial answer: if a chunk finally fails, the whole request fails
with that chunk's error (the node's own error when every attempt agreed, as
dispatch gives it), and the other chunks are cancelled. A ``blockHash`` filter,
a range with a ``pending``/``safe``/``finalized`` end, an inverted range or one
starting past the head is never split: the node answers it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
import trio

from lasso.callmeta import CallMeta
from lasso.chain import ChainRuntime
from lasso.core.block_target import TargetKind, block_target
from lasso.core.classify import Reason
from lasso.core.jsonrpc import Call
from lasso.core.logs_split import (
    cap_error,
    cap_window,
    chunk_count,
    chunk_params,
    merge_chunks,
    needs_head,
    nth_chunk,
    refusal,
    window,
)
from lasso.core.router import RoutePlan, Strategy
from lasso.dispatch import Outcome, dispatch
from lasso.errors import LassoError, NoProviderAvailable, UpstreamProtocolError, UpstreamRpcError

__all__ = ["Route", "get_logs"]

log = logging.getLogger("lasso.logs")

METHOD = "eth_getLogs"
#: Refusals one request may narrow through (each at least halves): bounds a
#: provider that refuses every width.
MAX_NARROWINGS = 24
#: A chunk is not started with less than this left of the request's deadline.
MIN_CHUNK_S = 0.035
_RANGE_REASONS = frozenset({Reason.RANGE_TOO_LARGE.value, Reason.RESULT_TOO_LARGE.value})


class Route(msgspec.Struct, frozen=True):
    """How the client's route asks to plan (``Target`` fields, without the gateway)."""

    strategy: Strategy | None = None
    provider: str | None = None
    transport: str | None = None


class _Request:
    """One client ``eth_getLogs``: its chain, route, bound and what it did."""

    def __init__(self, chain: ChainRuntime, call: Call, meta: CallMeta, route: Route) -> None:
        self.chain = chain
        self.call = call
        self.meta = meta
        self.route = route
        self.limiter = trio.CapacityLimiter(chain.routing.logs_chunk_concurrency)
        self.summary = Outcome()  # every chunk's attempts, for routing metadata
        self.chunks = 0

    def plan(self, call: Call | None = None) -> RoutePlan:
        """A plan for ``call`` (by default the client's request), eligibility included."""
        call = call or self.call
        return self.chain.plan(
            call.method,
            trio.current_time(),
            strategy=self.route.strategy,
            provider=self.route.provider,
            transport=self.route.transport,
            params=call.params,
        )

    def provider_limit(self, plan: RoutePlan) -> int | None:
        """The narrowest range limit among the providers ``plan`` may try."""
        limits = []
        for provider_id in {view.provider_id for view in plan.channels}:
            provider = self.chain.providers.get(provider_id)
            limit = None if provider is None else provider.capabilities.logs_range_limit()
            if limit is not None:
                limits.append(limit)
        return min(limits, default=None)

    async def send(
        self, call: Call, plan: RoutePlan, outcome: Outcome, started_at: float | None = None
    ) -> bytes:
        hedge_after_s = self.chain.hedge_delay_s(call.method, plan)
        return await dispatch(
            self.chain, call, plan, outcome, hedge_after_s=hedge_after_s, started_at=started_at
        )

    def learn(self, outcome: Outcome, span: int | None) -> int | None:
        """Learn from the range refusals in ``outcome``; the width to retry with, if any.

        ``span`` is the refused range's width (None while it is unresolved: the
        refusal is read again once it is known).
        """
        widths = []
        for _, exc in outcome.failures:
            if not isinstance(exc, UpstreamRpcError) or exc.reason not in _RANGE_REASONS:
                continue
            taught = refusal(
                exc.message,
                exc.rpc_code,
                span or 2**63,
                result_size=exc.reason == Reason.RESULT_TOO_LARGE.value,
            )
            if taught is None:
                continue
            provider = self.chain.providers.get(exc.provider_id)
            if provider is not None and taught.provider_limit is not None and span is not None:
                provider.capabilities.learn_logs_range_limit(taught.provider_limit)
            widths.append(taught.width)
        return min(widths, default=None)

    def summarise(self, outcome: Outcome) -> None:
        self.summary.attempts.extend(outcome.attempts)
        if outcome.provider is not None:
            self.summary.provider, self.summary.transport = outcome.provider, outcome.transport
            self.summary.upstream_latency_us = outcome.upstream_latency_us
        self.summary.breaker_state = outcome.breaker_state or self.summary.breaker_state


async def get_logs(chain: ChainRuntime, call: Call, meta: CallMeta, route: Route) -> bytes:
    """The raw result of one ``eth_getLogs``, or raise the error the client should see."""
    request = _Request(chain, call, meta, route)
    plan = request.plan()
    cap = chain.config.max_logs_block_range
    limit = request.provider_limit(plan)
    if cap is None and limit is None:  # nothing to keep to
        return await _whole(request, plan)
    target = block_target(METHOD, call.params)
    low, high = target.low, target.high
    if low is None or high is None or low == high:  # not a range (blockHash), or one block
        return await _whole(request, plan)
    head = await _head(request) if needs_head(low, high) else None
    capped = cap_window(low, high, head)
    if cap is not None and capped is not None:
        error = cap_error(capped[0], capped[1], cap)
        if error is not None:
            raise error
    numbers = window(low, high, head)
    if limit is None or numbers is None or numbers[1] - numbers[0] + 1 <= limit:
        return await _whole(request, plan)
    return await _split(request, plan, numbers, limit, head)


async def _whole(request: _Request, plan: RoutePlan) -> bytes:
    """The request unchanged on ``plan`` (today's path); split if refused for its range."""
    outcome = Outcome()
    request.meta.planned(plan, outcome)
    try:
        result = await request.send(request.call, plan, outcome, request.meta.started)
    except LassoError as refused:
        if request.learn(outcome, None) is None:
            raise
        target = block_target(METHOD, request.call.params)
        low, high = target.low, target.high
        if low is None or high is None:
            raise
        head = await _head(request) if needs_head(low, high) else None
        numbers = window(low, high, head)
        width = None if numbers is None else request.learn(outcome, numbers[1] - numbers[0] + 1)
        if numbers is None or width is None:
            raise
        request.summarise(outcome)
        return await _split(request, plan, numbers, width, head, refused=refused)
    request.learn(outcome, _known_span(request))
    return result


def _known_span(request: _Request) -> int | None:
    """The span of a request another provider served, if known without asking (a
    refusal on the way is learned only then: never an extra call for it)."""
    target = block_target(METHOD, request.call.params)
    if target.kind is not TargetKind.RANGE or target.low is None or target.high is None:
        return None
    numbers = window(target.low, target.high, _known_head(request))
    return None if numbers is None else numbers[1] - numbers[0] + 1


def _known_head(request: _Request) -> int | None:
    """The head the request's ``latest`` means, if known: a pinned provider's own."""
    state, now = request.chain.state, trio.current_time()
    pinned = request.route.provider
    return state.consensus_head(now) if pinned is None else state.height(pinned)


async def _head(request: _Request) -> int:
    """The consensus head; unknown, the head an ``eth_blockNumber`` gets on the normal path."""
    head = _known_head(request)
    if head is not None:
        return head
    call = Call("eth_blockNumber", b"[]", b"1")
    raw = await request.send(call, request.plan(call), Outcome())
    try:
        return int(msgspec.json.decode(raw, type=str), 16)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise UpstreamProtocolError(f"eth_blockNumber answered {raw[:64]!r}") from None


async def _split(
    request: _Request,
    plan: RoutePlan,
    numbers: tuple[int, int],
    width: int,
    head: int | None,
    *,
    refused: LassoError | None = None,
) -> bytes:
    """Fetch ``numbers`` in chunks of ``width`` and merge them in chain order.

    A range past the head, inverted, or with params that are not one filter object
    is not split: the node answers it whole, or, when it was refused whole already
    (``refused``), that refusal is the answer.
    """
    low, high = numbers
    if head is None:
        head = await _head(request)
    if low > head or high < low or not _splittable(request.call.params):
        if refused is not None:
            raise refused
        return await _whole(request, plan)
    high = min(high, head)
    request.meta.planned(plan, request.summary)
    started = trio.current_time()
    try:
        result = await _fetch_range(request, (low, high), width, 0)
    except ValueError as exc:  # a chunk's result was not an array: never a shorter answer
        raise UpstreamProtocolError(f"eth_getLogs: {exc}") from None
    log.debug(
        "eth_getLogs [%d, %d] in %d chunks of <= %d blocks, %.0f ms",
        low,
        high,
        request.chunks,
        width,
        (trio.current_time() - started) * 1000,
    )
    return result


def _splittable(params: bytes) -> bool:
    """Params ``chunk_params`` can rewrite (one filter object); else the node answers."""
    try:
        chunk_params(params, (0, 0))
    except ValueError:
        return False
    return True


async def _fetch_range(
    request: _Request, numbers: tuple[int, int], width: int, narrowings: int
) -> bytes:
    low, high = numbers
    count = chunk_count(low, high, width)

    async def fetch(index: int) -> bytes:
        return await _fetch_chunk(request, nth_chunk(low, high, width, index), narrowings)

    workers = request.chain.routing.logs_chunk_concurrency
    return merge_chunks(await _gather(count, fetch, workers))


async def _fetch_chunk(request: _Request, chunk: tuple[int, int], narrowings: int) -> bytes:
    """One chunk on a plan of its own, made when its slot is free; narrower chunks
    if the providers now known to be narrower, or every provider, refused it."""
    span = chunk[1] - chunk[0] + 1
    async with request.limiter:
        call = Call(METHOD, chunk_params(request.call.params, chunk), request.call.id)
        plan = request.plan(call)  # eligibility judges the chunk's own range
        if trio.current_time() + MIN_CHUNK_S >= request.meta.started + plan.deadline_s:
            raise _too_late(request, plan, chunk)
        width = request.provider_limit(plan)  # may have been learned since the split
        if width is None or width >= span:
            outcome = Outcome()
            request.chunks += 1
            try:  # the request's deadline, not one per chunk
                result = await request.send(call, plan, outcome, request.meta.started)
            except LassoError:
                request.summarise(outcome)
                width = request.learn(outcome, span)
                if width is None or narrowings >= MAX_NARROWINGS:
                    raise
                narrowings += 1
            else:
                request.summarise(outcome)
                request.learn(outcome, span)
                return result
    return await _fetch_range(request, chunk, width, narrowings)  # the slot is free again


def _too_late(request: _Request, plan: RoutePlan, chunk: tuple[int, int]) -> LassoError:
    """The request's deadline passed with chunks left: a clear error, never a part."""
    deadline_ms = round(plan.deadline_s * 1000)
    return NoProviderAvailable(
        f"eth_getLogs: the range was not served within the {deadline_ms} ms deadline "
        f"({request.chunks} chunks fetched, next from block {chunk[0]}); "
        "ask for a narrower range",
        data={"chunks_fetched": request.chunks, "deadline_ms": deadline_ms},
    )


async def _gather(
    count: int, fetch: Callable[[int], Awaitable[bytes]], workers: int
) -> list[bytes]:
    """``fetch(0) .. fetch(count - 1)`` in order, by at most ``workers`` tasks taking
    the next index in turn (never one task per chunk: a span of millions of blocks
    holds only what is in flight). The first error cancels the rest and is raised as
    it is (never an exception group, never a shorter list)."""
    results: dict[int, bytes] = {}
    failure: list[BaseException] = []
    indices = iter(range(count))

    async def work(scope: trio.CancelScope) -> None:
        for index in indices:  # shared: each worker takes the next chunk
            try:
                results[index] = await fetch(index)
            except Exception as exc:  # Cancelled is not an Exception: it propagates
                if not failure:
                    failure.append(exc)
                scope.cancel(reason="an eth_getLogs chunk failed")
                return

    async with trio.open_nursery() as nursery:
        for _ in range(min(workers, count)):
            nursery.start_soon(work, nursery.cancel_scope)
    if failure:
        raise failure[0]
    if len(results) != count:  # cancelled from outside: never reached with a result
        raise RuntimeError("eth_getLogs chunks missing without an error")
    return [results[index] for index in range(count)]
