"""The pure core of gap-free, duplicate-free subscriptions.

Modules, one concept each:

* :mod:`~lasso.core.subs.filters` — ``eth_subscribe`` params, canonical keys, log matching;
* :mod:`~lasso.core.subs.heads` — a chain's delivered newHeads (gaps, duplicates, reorgs),
  answering with :mod:`~lasso.core.subs.head_decisions`;
* :mod:`~lasso.core.subs.logs` — a filter's delivered logs (dedupe, backfill, removals);
* :mod:`~lasso.core.subs.shape` — backfilled heads shaped like the chain's live heads;
* :mod:`~lasso.core.subs.resume` — ``lasso_resume_from`` plans and the per-client seam;
* :mod:`~lasso.core.subs.items` — :class:`Delivery` and :class:`TooFar`;
* :mod:`~lasso.core.subs.budget` — how many upstream subscriptions a chain holds, and
  how many sit idle (per chain and per client);
* :mod:`~lasso.core.subs.bounds` — the size bound on log filters (``eth_getLogs``,
  ``eth_newFilter``, ``eth_subscribe`` ``logs``).

The shell keeps one upstream subscription per (chain, ``SubscriptionRequest.key``) and one
stream object beside it, and runs one serial consumer per stream::

    decision = heads.offer(payload, raw)              # every live head
    while True:
        fan_out(decision.deliver)                      # in order; raw bytes when not None
        if decision.orphaned:                          # a reorg un-delivers logs too
            for logs in log_streams_of_chain:
                fan_out(logs.orphan(decision.orphaned, decision.fork_point))
                await backfill_logs(logs)              # the new branch's logs, see below
        if decision.fetch is None:
            break
        blocks = [await get_block(n) for n in decision.fetch]  # getBlockByNumber(n, false)
        decision = heads.offer_backfill(blocks)        # a block a provider lacks: leave out
    if decision.too_far:                               # say so, then start afresh
        notify_error(decision.too_far.message); heads.reset(); heads.offer(payload, raw)

    fan_out(logs.offer(payload, raw).deliver)         # every live log

    async def backfill_logs(logs):                     # also on failover, before consuming
        missing = logs.backfill_range(provider_head)   # the new subscription
        if isinstance(missing, TooFar): notify_error(missing.message)
        elif missing:
            found = await get_logs(get_logs_params(request.log_filter, missing))
            fan_out(logs.accept_backfill(missing, found).deliver)

A logs stream is ``anchor``-ed at the provider's head right after the upstream
subscription is confirmed. On failover ``heads.backfill_range(new_head)`` likewise names
the blocks to fetch and offer. ``lasso_resume_from``: see :mod:`~lasso.core.subs.resume`.
Each stream has ``statistics()`` for /health and /metrics.
"""

from lasso.core.subs.filters import (
    InvalidSubscription,
    LogFilter,
    SubscriptionKind,
    SubscriptionRequest,
    get_logs_params,
    log_matches,
    parse_subscribe_params,
    upstream_params,
)
from lasso.core.subs.heads import (
    HeadDecision,
    HeadStream,
    HeadStreamError,
    HeadStreamStatistics,
    HeadVerdict,
    StreamState,
)
from lasso.core.subs.items import DEFAULT_MAX_BACKFILL, DEFAULT_WINDOW, Delivery, TooFar
from lasso.core.subs.logs import LogDecision, LogStream, LogStreamStatistics, LogVerdict
from lasso.core.subs.resume import (
    DEFAULT_MAX_REPLAY,
    ResumePlan,
    ResumeRejected,
    ResumeSeam,
    plan_resume,
)
from lasso.core.subs.shape import GETH_HEAD_FIELDS, HeadShape

__all__ = [
    "DEFAULT_MAX_BACKFILL",
    "DEFAULT_MAX_REPLAY",
    "DEFAULT_WINDOW",
    "GETH_HEAD_FIELDS",
    "Delivery",
    "HeadDecision",
    "HeadShape",
    "HeadStream",
    "HeadStreamError",
    "HeadStreamStatistics",
    "HeadVerdict",
    "InvalidSubscription",
    "LogDecision",
    "LogFilter",
    "LogStream",
    "LogStreamStatistics",
    "LogVerdict",
    "ResumePlan",
    "ResumeRejected",
    "ResumeSeam",
    "StreamState",
    "SubscriptionKind",
    "SubscriptionRequest",
    "TooFar",
    "get_logs_params",
    "log_matches",
    "parse_subscribe_params",
    "plan_resume",
    "upstream_params",
]
