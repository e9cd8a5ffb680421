"""Carry out a route plan: attempts, per-attempt budgets, failover.

Theory of operation. The plan is an ordered list of channels and a total
deadline. Attempts run one after another inside the caller's scope, so a
client that hangs up cancels the attempt in flight (quart-trio/hypercorn
cancel the handler; nothing here needs to notice). Each attempt gets a
budget: a replay-safe method's first attempt at most 60% of the deadline, the
rest whatever is left; no attempt starts with under 25 ms left. After each
attempt its outcome is recorded (breaker, latency, rate limit) and decides
what happens next:

    success                     record, return
    deterministic RPC error     return it to the client at once
    capability RPC error        next provider, no breaker penalty
    rate limited                demote the provider, next provider
    provider failure            breaker failure; next provider only when the
                                method is replay-safe or it provably never left
    cancelled                   re-raise; not a failure, not a latency sample

When nothing succeeds the caller gets one ``NoProviderAvailable`` whose data
lists every attempt.
"""

from __future__ import annotations

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.breaker import Admission, FailureKind
from lasso.core.classify import ErrorCategory
from lasso.core.jsonrpc import Call
from lasso.core.latency import LatencyKey
from lasso.core.router import ChannelView, RoutePlan
from lasso.errors import (
    LassoError,
    NoProviderAvailable,
    UpstreamError,
    UpstreamNetworkError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRpcError,
    UpstreamTimeout,
)

FIRST_ATTEMPT_SHARE = 0.6
MIN_ATTEMPT_S = 0.025


class AttemptRecord(msgspec.Struct, frozen=True):
    provider: str
    transport: str
    category: str
    message: str


class Outcome(msgspec.Struct):
    """What happened, for routing metadata and logs."""

    provider: str | None = None
    transport: str | None = None
    upstream_latency_us: int | None = None
    attempts: list[AttemptRecord] = msgspec.field(default_factory=list)
    breaker_state: str | None = None


async def dispatch(chain: ChainRuntime, call: Call, plan: RoutePlan, outcome: Outcome) -> bytes:
    """Return the raw result bytes, or raise the error the client should see."""
    deadline = trio.current_time() + plan.deadline_s
    dispatched = 0
    for channel in plan.channels:
        now = trio.current_time()
        remaining = deadline - now
        if dispatched >= plan.max_attempts or remaining < MIN_ATTEMPT_S:
            break
        provider = chain.providers[channel.provider_id]
        breaker = provider.breakers[channel.transport]
        admission = breaker.admit(now)
        if not admission.admitted:
            outcome.attempts.append(_record(channel, "skipped", "circuit breaker not admitting"))
            continue
        first = dispatched == 0 and plan.replay_safe and plan.failover
        budget = min(remaining, FIRST_ATTEMPT_SHARE * plan.deadline_s) if first else remaining
        budget = max(budget, MIN_ATTEMPT_S)
        dispatched += 1
        outcome.breaker_state = breaker.state(now).value
        try:
            result, latency_us = await _attempt(chain, call, channel, admission, budget)
        except UpstreamError as exc:
            outcome.attempts.append(_record(channel, _category(exc), exc.message))
            if not _record_failure(chain, call, channel, admission, exc, plan):
                raise
            continue
        _record_success(chain, call, channel, admission, latency_us)
        outcome.provider, outcome.transport = channel.provider_id, channel.transport
        outcome.upstream_latency_us = latency_us
        return result
    raise _exhausted(call, plan, outcome)


async def _attempt(
    chain: ChainRuntime, call: Call, channel: ChannelView, admission: Admission, budget: float
) -> tuple[bytes, int]:
    provider = chain.providers[channel.provider_id]
    breaker = provider.breakers[channel.transport]
    try:
        with trio.move_on_after(budget):
            return await provider.request(call.method, call.params, channel.transport)
    except BaseException as exc:
        if not isinstance(exc, UpstreamError):
            # Cancelled by the client, or our bug: never the provider's fault.
            breaker.record_cancelled(trio.current_time(), admission)
        raise
    raise UpstreamTimeout(
        f"Request timeout after {budget * 1000:.0f} ms", provider_id=channel.provider_id
    )


def _record_success(
    chain: ChainRuntime, call: Call, channel: ChannelView, admission: Admission, latency_us: int
) -> None:
    now = trio.current_time()
    chain.providers[channel.provider_id].breakers[channel.transport].record_success(now, admission)
    key = LatencyKey(channel.provider_id, call.method, channel.transport)
    chain.latency.record_success(key, now, latency_us)


def _record_failure(
    chain: ChainRuntime,
    call: Call,
    channel: ChannelView,
    admission: Admission,
    exc: UpstreamError,
    plan: RoutePlan,
) -> bool:
    """Record what ``exc`` says about the provider; True if another may be tried."""
    now = trio.current_time()
    provider = chain.providers[channel.provider_id]
    breaker = provider.breakers[channel.transport]
    if isinstance(exc, UpstreamRpcError) and exc.category == ErrorCategory.DETERMINISTIC.value:
        breaker.record_success(now, admission)  # the provider works; the request is wrong
        return False
    if isinstance(exc, UpstreamRpcError) and exc.category == ErrorCategory.CAPABILITY.value:
        breaker.record_cancelled(now, admission)
        return plan.failover
    if isinstance(exc, UpstreamRateLimited):
        breaker.record_cancelled(now, admission)
        provider.rate_limits[channel.transport].mark_limited(now, exc.retry_after_ms)
        return plan.failover
    breaker.record_failure(now, admission, _failure_kind(exc))
    chain.latency.record_failure(
        LatencyKey(channel.provider_id, call.method, channel.transport), now
    )
    never_sent = isinstance(exc, UpstreamNetworkError) and exc.never_sent
    return plan.failover and (plan.replay_safe or never_sent)


def _failure_kind(exc: UpstreamError) -> FailureKind:
    if isinstance(exc, UpstreamTimeout):
        return FailureKind.TIMEOUT
    if isinstance(exc, UpstreamNetworkError):
        return FailureKind.NETWORK
    if isinstance(exc, UpstreamProtocolError):
        return FailureKind.PROTOCOL
    return FailureKind.SERVER


def _category(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamRpcError):
        return exc.category
    if isinstance(exc, UpstreamRateLimited):
        return ErrorCategory.RATE_LIMIT.value
    return ErrorCategory.PROVIDER_FAILURE.value


def _record(channel: ChannelView, category: str, message: str) -> AttemptRecord:
    return AttemptRecord(channel.provider_id, channel.transport, category, message)


def _exhausted(call: Call, plan: RoutePlan, outcome: Outcome) -> LassoError:
    attempts = [msgspec.structs.asdict(a) for a in outcome.attempts]
    data: dict[str, object] = {"attempts": attempts}
    retry_after_ms = plan.retry_after_ms()
    if retry_after_ms is not None:
        data["retry_after_ms"] = retry_after_ms
        message = (
            f"All circuit breakers are open for {call.method}; retry after {retry_after_ms} ms"
        )
    elif not plan.channels:
        message = f"No provider available for {call.method}"
    else:
        last = outcome.attempts[-1].message if outcome.attempts else "no attempt could start"
        message = f"All providers failed for {call.method}: {last}"
    return NoProviderAvailable(message, data=data)
