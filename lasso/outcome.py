"""What one dispatch did, for routing metadata and logs, and the error when nothing worked.

:class:`Outcome` collects each attempt (``?include_meta`` shows them);
:func:`exhausted` is the answer when no attempt succeeded: the node error every
attempt agrees on (:func:`agreed_error`, see :mod:`lasso.dispatch`), else one
``NoProviderAvailable`` whose data lists every attempt.
"""

from __future__ import annotations

from typing import cast

import msgspec

from lasso import redact
from lasso.core.classify import ErrorCategory, Reason
from lasso.core.jsonrpc import Call
from lasso.core.router import ChannelView, RoutePlan
from lasso.errors import (
    LassoError,
    NoProviderAvailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRpcError,
)
from lasso.upstream.provider import HTTP

__all__ = ["AttemptRecord", "Outcome", "agreed_error", "attempt_record", "exhausted"]


class AttemptRecord(msgspec.Struct, frozen=True):
    provider: str
    transport: str
    category: str
    message: str


class Outcome(msgspec.Struct):
    """What happened, for routing metadata and logs.

    ``failures`` keeps each failed attempt's transport and error, in order.
    """

    provider: str | None = None
    transport: str | None = None
    upstream_latency_us: int | None = None
    attempts: list[AttemptRecord] = msgspec.field(default_factory=list)
    breaker_state: str | None = None
    failures: list[tuple[str, UpstreamError]] = msgspec.field(default_factory=list)

    def failed(self, channel: ChannelView, exc: UpstreamError) -> None:
        # The message may quote an upstream's exception or page: no secret goes further.
        self.attempts.append(attempt_record(channel, _category(exc), redact.scrub(exc.message)))
        self.failures.append((channel.transport, exc))


def _category(exc: UpstreamError) -> str:
    if isinstance(exc, UpstreamRpcError):
        return exc.category
    if isinstance(exc, UpstreamRateLimited):
        return ErrorCategory.RATE_LIMIT.value
    return ErrorCategory.PROVIDER_FAILURE.value


def attempt_record(channel: ChannelView, category: str, message: str) -> AttemptRecord:
    return AttemptRecord(channel.provider_id, channel.transport, category, message)


def exhausted(call: Call, plan: RoutePlan, outcome: Outcome) -> LassoError:
    agreed = agreed_error(outcome.failures)
    if agreed is not None:
        return agreed
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


def agreed_error(failures: list[tuple[str, UpstreamError]]) -> UpstreamRpcError | None:
    """The node error every attempt agrees on, to answer with unchanged; see the module doc."""
    errors = [exc for _, exc in failures if isinstance(exc, UpstreamRpcError)]
    if not errors or len(errors) != len(failures):
        return None
    if any(exc.reason == Reason.UNATTRIBUTED for exc in errors):
        return None
    same_code = len({exc.rpc_code for exc in errors}) == 1
    capability = all(exc.category == ErrorCategory.CAPABILITY.value for exc in errors)
    if not (same_code or capability):
        return None
    over_http = [exc for transport, exc in failures if transport == HTTP]
    return cast(UpstreamRpcError, (over_http or errors)[0])
