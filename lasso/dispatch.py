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
    empty answer from a         record, hold it; next provider at the block, else
    provider behind the block   wait for one to reach it (lasso.emptycheck)
    deterministic RPC error     return it to the client at once
    capability RPC error        next provider, no breaker penalty (a WebSocket
                                "no such call" used no dispatch: see _not_executed)
    rate limited                demote the provider, next provider
    provider failure            breaker failure; next provider only when the
                                method is replay-safe or it provably never left;
                                after a timeout or a connection lost mid-request
                                the provider's other channels go behind every
                                other provider's (defer_provider)
    connection lost after the   a provider failure, but at most once more:
    request was sent            losing a second provider so stops the request
                                (RequestQuarantined) and quarantines it; a
                                request answered lately is spared
                                (lasso.core.poison)
    cancelled                   re-raise; not a failure, not a latency sample

A request whose fingerprint is quarantined (it lost two providers mid-request
lately: a query of death most likely) is refused before any attempt, and every
request answered is remembered as such (:class:`~lasso.core.poison.PoisonGuard`,
one per chain). Hedged attempts follow the same rule: after a connection lost
mid-request the race goes on one attempt at a time, so at most one more provider
is exposed to it.

The plan names channels by (provider id, transport). They are resolved to the
chain's :class:`~lasso.upstream.provider.Provider` and
:class:`~lasso.core.channel.Channel` objects once, before the first await
(:class:`Targets`), and every attempt asks and records through those objects:
a provider removed from the chain while a request to it is in flight still
answers it, and nothing indexes ``chain.providers`` after an await.

When nothing succeeds and every attempt made was answered with a JSON-RPC
error that agrees (one code from all, or CAPABILITY from all: no provider could
serve it), that error is the answer: the node's own error object goes to the
client unchanged, as a healthy node would send it, and the attempts go to the
routing metadata (``?include_meta``). Preferred is an HTTP attempt's error,
then the first: anvil answers an unknown method over WebSocket with a -32602
"did not match any variant" where HTTP says -32601. An error the WebSocket
link could not attribute (``Reason.UNATTRIBUTED``) is never the answer: it may
belong to another request. After one, the request goes on over HTTP channels
only, where the node's answer is matched to it exactly, and the attempt costs no
dispatch (it is replay-safe, and the node may have read none of it). Otherwise
the caller gets one
``NoProviderAvailable`` whose data lists every attempt.
"""

from __future__ import annotations

import msgspec
import trio

from lasso.chain import ChainRuntime
from lasso.core.breaker import Admission
from lasso.core.channel import Channel
from lasso.core.classify import ErrorCategory, Reason
from lasso.core.jsonrpc import Call
from lasso.core.poison import lost_mid_request
from lasso.core.router import ChannelView, RoutePlan
from lasso.emptycheck import EmptyCheck
from lasso.errors import (
    LassoError,
    RequestQuarantined,
    UpstreamError,
    UpstreamNetworkError,
    UpstreamRateLimited,
    UpstreamRpcError,
    UpstreamTimeout,
)
from lasso.learning import learn
from lasso.opspublish import failover, quarantined, rate_limited
from lasso.outcome import AttemptRecord, Outcome, agreed_error, attempt_record, exhausted
from lasso.upstream.probe import failure_kind
from lasso.upstream.provider import WS, Provider

__all__ = [
    "AttemptRecord",
    "Outcome",
    "Targets",
    "agreed_error",
    "defer_provider",
    "dispatch",
    "providers_first",
]

FIRST_ATTEMPT_SHARE = 0.6
MIN_ATTEMPT_S = 0.025
#: Kept back from the deadline so that even an exhausted answer reaches the client in time.
ANSWER_MARGIN_S = 0.010


Target = tuple[Provider, Channel]


class Targets:
    """The plan's channels resolved to objects, once (see the module docstring)."""

    __slots__ = ("_by_view",)

    def __init__(self, chain: ChainRuntime, plan: RoutePlan) -> None:
        self._by_view: dict[tuple[str, str], Target] = {}
        for view in plan.channels:
            target = chain.resolve(view.provider_id, view.transport)
            if target is not None:
                self._by_view[(view.provider_id, view.transport)] = target

    def get(self, view: ChannelView) -> Target | None:
        return self._by_view.get((view.provider_id, view.transport))


async def dispatch(
    chain: ChainRuntime,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    *,
    hedge_after_s: float | None = None,
    started_at: float | None = None,
) -> bytes:
    """Return the raw result bytes, or raise the error the client should see.

    With ``hedge_after_s`` (replay-safe reads only) attempts are raced Happy
    Eyeballs style instead of run one after another. The deadline counts from
    ``started_at`` (when the request arrived: a batch item may wait for a slot).
    A quarantined request raises :class:`RequestQuarantined` before any attempt.
    """
    targets = Targets(chain, plan)  # before any await: see the module docstring
    now = trio.current_time()
    left_s = chain.poison.refused_for(call.method, call.params, now)
    if left_s is not None:
        raise _quarantined(call, left_s)
    first_attempt = len(outcome.attempts)
    result = await _dispatch(chain, targets, call, plan, outcome, hedge_after_s, started_at)
    chain.poison.answered(call.method, call.params, trio.current_time())
    if len(outcome.attempts) > first_attempt:  # something failed before this answer
        failover(chain, call.method, outcome, first_attempt)  # an operator event
    return result


async def _dispatch(
    chain: ChainRuntime,
    targets: Targets,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    hedge_after_s: float | None,
    started_at: float | None,
) -> bytes:
    begun = trio.current_time() if started_at is None else started_at
    deadline = begun + plan.deadline_s - ANSWER_MARGIN_S
    check = EmptyCheck(chain, call)  # empty is not an answer from a node behind
    if hedge_after_s is not None and plan.replay_safe and plan.failover:
        return await _dispatch_hedged(
            chain, targets, call, plan, outcome, deadline, hedge_after_s, check
        )
    dispatched = 0
    http_only = False  # after an unattributed WebSocket rejection: see the module docstring
    lost: set[str] = set()  # providers whose connection was lost mid-request
    channels = list(plan.channels)
    index = 0
    while index < len(channels):
        view = channels[index]
        index += 1
        now = trio.current_time()
        remaining = deadline - now
        if dispatched >= plan.max_attempts or remaining < MIN_ATTEMPT_S:
            break
        if (http_only and view.transport == WS) or check.defers(view):
            continue
        admitted = _admit(targets, view, outcome, now)
        if admitted is None:
            continue
        target, admission = admitted
        first = dispatched == 0 and plan.replay_safe and plan.failover
        budget = min(remaining, FIRST_ATTEMPT_SHARE * plan.deadline_s) if first else remaining
        dispatched += 1
        blame = chain.poison.counts(view.provider_id, now)  # lasso.core.poison
        try:
            result, latency_us = await _attempt(target, call, view, admission, budget)
        except UpstreamError as exc:
            outcome.failed(view, exc)
            if not _record_failure(chain, target, view, call, admission, exc, plan):
                raise
            unattributed = _unattributed(exc)
            http_only = http_only or unattributed
            if unattributed or _not_executed(exc, view):
                dispatched -= 1  # it used no dispatch
            if blame and lost_mid_request(exc):
                lost.add(view.provider_id)
                _stop_if_poisoned(chain, call, lost, outcome)
            if isinstance(exc, UpstreamTimeout) or lost_mid_request(exc):
                # The node hangs or died, not one way to reach it.
                channels[index:] = defer_provider(channels[index:], view.provider_id)
            continue
        _record_success(chain, target[1], call, view, admission, latency_us, outcome)
        if check.accepts(view, result, outcome):
            return result
        dispatched -= 1  # an empty answer from a provider behind costs no dispatch
    return await _settle(chain, targets, call, plan, outcome, deadline, check)


def providers_first(channels: tuple[ChannelView, ...]) -> tuple[ChannelView, ...]:
    """Each provider's first channel in plan order, then the other channels in order:
    a provider that hangs on one transport most likely hangs on the other too."""
    seen: set[str] = set()
    firsts: list[ChannelView] = []
    rest: list[ChannelView] = []
    for view in channels:
        (rest if view.provider_id in seen else firsts).append(view)
        seen.add(view.provider_id)
    return (*firsts, *rest)


def defer_provider(rest: list[ChannelView], provider_id: str) -> list[ChannelView]:
    """``rest`` with ``provider_id``'s channels moved behind the other providers'
    (each group keeps its order): after one of its channels timed out, its other
    channel is tried only once every other provider has been."""
    others = [view for view in rest if view.provider_id != provider_id]
    return others + [view for view in rest if view.provider_id == provider_id]


async def _settle(
    chain: ChainRuntime,
    targets: Targets,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    deadline: float,
    check: EmptyCheck,
) -> bytes:
    """The plan is done: a held empty answer is settled (see lasso.emptycheck), else exhausted."""

    async def retry(view: ChannelView) -> bytes | None:
        now = trio.current_time()
        admitted = _admit(targets, view, outcome, now)
        if admitted is None or deadline - now < MIN_ATTEMPT_S:
            return None
        target, admission = admitted
        try:
            result, latency_us = await _attempt(target, call, view, admission, deadline - now)
        except UpstreamError as exc:
            outcome.failed(view, exc)
            _record_failure(chain, target, view, call, admission, exc, plan)
            return None
        _record_success(chain, target[1], call, view, admission, latency_us, outcome)
        return result

    settled = await check.settle(plan.channels, retry, outcome, deadline)
    if settled is not None:
        return settled
    raise exhausted(call, plan, outcome)


def _stop_if_poisoned(chain: ChainRuntime, call: Call, lost: set[str], outcome: Outcome) -> None:
    """Raise :class:`RequestQuarantined` if the providers ``lost`` so far stop the request."""
    poison = chain.poison
    if poison.lost(call.method, call.params, len(lost), trio.current_time()):
        quarantined(chain, call.method, sorted(lost), poison.quarantine_s)  # operator event
        raise _quarantined(call, poison.quarantine_s, outcome)


def _quarantined(call: Call, left_s: float, outcome: Outcome | None = None) -> RequestQuarantined:
    """The answer to a request that lost two providers mid-request, and to its repeats."""
    data: dict[str, object] = {"quarantined_ms": round(left_s * 1000)}
    if outcome is not None:
        data["attempts"] = [msgspec.structs.asdict(a) for a in outcome.attempts]
    return RequestQuarantined(
        f"{call.method}: the request lost the connection to 2 providers mid-request (it may "
        f"crash nodes), so it is not sent to another; the same request is refused for the "
        f"next {max(1, round(left_s))} s",
        data=data,
    )


def _unattributed(exc: UpstreamError) -> bool:
    return isinstance(exc, UpstreamRpcError) and exc.reason == Reason.UNATTRIBUTED


def _admit(
    targets: Targets, view: ChannelView, outcome: Outcome, now: float
) -> tuple[Target, Admission] | None:
    target = targets.get(view)
    if target is None:  # the provider left the chain between planning and now
        outcome.attempts.append(attempt_record(view, "skipped", "provider removed"))
        return None
    channel = target[1]
    admission = channel.admit(now)
    if not admission.admitted:
        outcome.attempts.append(attempt_record(view, "skipped", "circuit breaker not admitting"))
        return None
    outcome.breaker_state = channel.circuit(now).value
    return target, admission


class _Race:
    """Shared by the attempts of one hedged call (trio's Happy Eyeballs shape)."""

    def __init__(self, scope: trio.CancelScope, check: EmptyCheck) -> None:
        self.scope = scope
        self.check = check
        self.result: bytes | None = None
        self.terminal: LassoError | None = None
        self.lost: set[str] = set()  # providers whose connection was lost mid-request
        self.running = 0
        self._ended = trio.Event()

    @property
    def decided(self) -> bool:
        return self.result is not None or self.terminal is not None

    def started(self) -> None:
        self.running += 1

    def ended(self) -> None:
        self.running -= 1
        self._ended.set()
        self._ended = trio.Event()

    async def idle(self) -> None:
        """Until no attempt runs: after a connection lost mid-request the race goes on
        one attempt at a time, so at most one more provider is exposed to the request."""
        while self.running:
            await self._ended.wait()


async def _dispatch_hedged(
    chain: ChainRuntime,
    targets: Targets,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    deadline: float,
    hedge_after_s: float,
    check: EmptyCheck,
) -> bytes:
    """Staggered starts; a failure starts the next early; the first success cancels the rest."""
    first_cap_s = FIRST_ATTEMPT_SHARE * plan.deadline_s
    async with trio.open_nursery() as nursery:
        race = _Race(nursery.cancel_scope, check)
        started = 0
        for view in providers_first(plan.channels):  # a hedge races another provider
            if race.lost:
                await race.idle()
            now = trio.current_time()
            if race.decided or started >= plan.max_attempts or deadline - now < MIN_ATTEMPT_S:
                break
            if check.defers(view):
                continue
            admitted = _admit(targets, view, outcome, now)
            if admitted is None:
                continue
            target, admission = admitted
            # The first attempt never gets more than its share, whatever the hedge delay.
            budget = deadline - now if started else min(deadline - now, first_cap_s)
            started += 1
            failed = trio.Event()
            attempt = _RaceAttempt(target, view, admission, budget, failed)
            race.started()
            nursery.start_soon(_race_attempt, chain, call, plan, outcome, attempt, race)
            with trio.move_on_after(min(hedge_after_s, budget)):
                await failed.wait()
    if race.result is not None:
        return race.result
    if race.terminal is not None:
        raise race.terminal
    return await _settle(chain, targets, call, plan, outcome, deadline, check)


class _RaceAttempt(msgspec.Struct, frozen=True):
    target: Target
    view: ChannelView
    admission: Admission
    budget: float
    failed: trio.Event


async def _race_attempt(
    chain: ChainRuntime,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    attempt: _RaceAttempt,
    race: _Race,
) -> None:
    try:
        await _race_one(chain, call, plan, outcome, attempt, race)
    finally:
        race.ended()


async def _race_one(
    chain: ChainRuntime,
    call: Call,
    plan: RoutePlan,
    outcome: Outcome,
    attempt: _RaceAttempt,
    race: _Race,
) -> None:
    view, admission, channel = attempt.view, attempt.admission, attempt.target[1]
    blame = chain.poison.counts(view.provider_id, trio.current_time())  # lasso.core.poison
    try:
        result, latency_us = await _attempt(attempt.target, call, view, admission, attempt.budget)
    except UpstreamError as exc:
        outcome.failed(view, exc)
        terminal: LassoError | None = None
        if not _record_failure(chain, attempt.target, view, call, admission, exc, plan):
            terminal = exc
        elif blame and lost_mid_request(exc):
            race.lost.add(view.provider_id)
            try:
                _stop_if_poisoned(chain, call, race.lost, outcome)
            except RequestQuarantined as stop:
                terminal = stop
        if terminal is not None and not race.decided:
            race.terminal = terminal
            race.scope.cancel(reason="terminal error")
        attempt.failed.set()
        return
    _record_success(chain, channel, call, view, admission, latency_us, outcome)
    if not race.check.accepts(view, result, outcome):
        attempt.failed.set()  # held: the next provider starts now
        return
    if not race.decided:
        race.result = result
        race.scope.cancel(reason="hedged attempt won")


async def _attempt(
    target: Target, call: Call, view: ChannelView, admission: Admission, budget: float
) -> tuple[bytes, int]:
    provider, channel = target
    try:
        with trio.move_on_after(budget):
            return await provider.request(call.method, call.params, view.transport)
    except BaseException as exc:
        if not isinstance(exc, UpstreamError):
            # Cancelled by the client, or our bug: never the provider's fault.
            channel.record_cancelled(trio.current_time(), admission)
        raise
    raise UpstreamTimeout(
        f"Request timeout after {budget * 1000:.0f} ms", provider_id=view.provider_id
    )


def _record_success(
    chain: ChainRuntime,
    channel: Channel,
    call: Call,
    view: ChannelView,
    admission: Admission,
    latency_us: int,
    outcome: Outcome,
) -> None:
    now = trio.current_time()
    channel.record_success(now, admission, method=call.method, latency_us=latency_us)
    chain.poison.working(view.provider_id, now - latency_us / 1e6)  # lasso.core.poison
    outcome.provider, outcome.transport = view.provider_id, view.transport
    outcome.upstream_latency_us = latency_us


def _record_failure(
    chain: ChainRuntime,
    target: Target,
    view: ChannelView,
    call: Call,
    admission: Admission,
    exc: UpstreamError,
    plan: RoutePlan,
) -> bool:
    """Record what ``exc`` says about the provider; True if another may be tried."""
    now = trio.current_time()
    channel = target[1]
    if isinstance(exc, UpstreamRpcError) and exc.category == ErrorCategory.DETERMINISTIC.value:
        channel.record_success(now, admission)  # the provider works; the request is wrong
        return False
    if isinstance(exc, UpstreamRpcError) and exc.category == ErrorCategory.CAPABILITY.value:
        channel.record_cancelled(now, admission)
        learn(chain, target[0], view.transport, call, exc, now)  # lasso.learning
        return plan.failover
    if isinstance(exc, UpstreamRateLimited):
        if channel.mark_limited(now, admission, exc.retry_after_ms):  # a limited period starts
            rate_limited(chain, view.provider_id, view.transport, exc.retry_after_ms)
        return plan.failover
    channel.record_failure(now, admission, failure_kind(exc), method=call.method)
    if isinstance(exc, UpstreamNetworkError | UpstreamTimeout):
        chain.poison.failing(view.provider_id, now)  # down or hanging (lasso.core.poison)
    never_sent = isinstance(exc, UpstreamNetworkError) and exc.never_sent
    return plan.failover and (plan.replay_safe or never_sent)


def _not_executed(exc: UpstreamError, channel: ChannelView) -> bool:
    """The attempt provably did nothing, so another costs no dispatch (even for a write).

    Either it never left, or a WebSocket endpoint could not even parse it as a
    call: anvil answers any call it cannot match over WebSocket, unknown method or
    bad params alike, with one vague -32602, where HTTP says which. Trying on costs
    one call and lets an HTTP attempt give the node's precise answer (see
    :func:`agreed_error`).
    """
    if isinstance(exc, UpstreamNetworkError):
        return exc.never_sent
    return (
        channel.transport == WS
        and isinstance(exc, UpstreamRpcError)
        and exc.reason == Reason.METHOD_NOT_FOUND
    )
