"""Learning capabilities from a provider's answers: the dispatcher's one hook.

:func:`learn` is called for every CAPABILITY error an attempt got (never a breaker
failure). The decision is pure (:func:`lasso.core.lessons.lesson`); this writes it
into the provider's :class:`~lasso.core.capabilities.CapabilityBook`, which routing
reads on the next request (:mod:`lasso.core.eligibility`).
"""

from __future__ import annotations

from lasso.chain import ChainRuntime
from lasso.core.block_target import NO_BLOCK, block_target
from lasso.core.jsonrpc import Call
from lasso.core.lessons import LessonKind, lesson
from lasso.errors import UpstreamRpcError
from lasso.upstream.provider import Provider

__all__ = ["learn"]


def learn(
    chain: ChainRuntime,
    provider: Provider,
    transport: str,
    call: Call,
    exc: UpstreamRpcError,
    now: float,
) -> None:
    """Write what ``exc`` (a CAPABILITY answer of ``provider``) teaches into its book."""
    state = chain.state
    head = state.consensus_head(now)
    target = NO_BLOCK if head is None else block_target(call.method, call.params)
    learned = lesson(
        method=call.method,
        reason=exc.reason,
        code=exc.rpc_code,
        message=exc.message,
        transport=transport,
        target=target,
        head=head,
        provider_height=state.height(provider.id),
        archival_threshold=chain.config.archival_threshold,
    )
    if learned is None:
        return
    ttl_s = chain.routing.capability_ttl_ms / 1000
    if learned.kind is LessonKind.UNSUPPORTED:
        provider.capabilities.learn_unsupported(call.method, now, ttl_s)
    else:
        provider.capabilities.learn_pruned(learned.depth, now, ttl_s)
