"""Every SLO of a battle run, computed only from its recorded events.

No SLO has a default: a measure with nothing to measure is ``None`` ("no data"), never a perfect
value, and :mod:`battle.thresholds` treats "no data" as a breach of any threshold that needs it.

Definitions (all times monotonic seconds from the events):

- **success rate**: successes / requests. A success is a JSON-RPC ``result``, or a JSON-RPC
  error the oracle marked ``error_expected``. A hang (``TIMEOUT``), any other JSON-RPC error,
  non-JSON, HTML and 5xx answers are failures.
- **latency p50/p95/p99**: over every *answered* request (hangs have no latency; they fail the
  success rate instead), by the nearest-rank method: the p-th percentile of n sorted samples is
  ``sorted[ceil(p/100 * n) - 1]``. It is always an observed sample, so p50 <= p95 <= p99 and
  each lies within min..max.
- **failover latency**: for each chaos event with a target provider, ``answered_at -
  started_at`` of the first successful answer (by ``answered_at``, at or after the start)
  served by a provider other than the target. A fault after which requests were sent but no
  other provider ever answered successfully is a *missed failover*. The SLO is the maximum.
- **recovery time**: for each chaos event that ended, ``answered_at - ended_at`` of the first
  successful answer served by a provider (routing metadata names one: answers the gateway gives
  itself, such as ``eth_chainId``, prove nothing about providers) to a request sent at or after
  the end. Requests sent after the end with no such answer make a *missed recovery*. The SLO is
  the maximum: how long the worst fault kept hurting after it was undone.
- **subscription gaps and duplicates**, see :mod:`battle.subs`.
- **backfill completion time**, see :mod:`battle.subs`.
- **head regressions**: per client, head observations in time order whose number is lower than
  the highest that client saw before.
- **read-your-head misses**: a read of block ``n`` answered ``null``/``[]`` after the client had
  been told (head observation or subscription head, at or before ``sent_at``) that ``n`` exists.
- **peak RSS**: the largest resource sample.
- **non-JSON / 5xx / HTML / timeouts**: counts of requests with that outcome; 5xx also counts
  any HTTP status >= 500 whatever the body.
- **id mismatches**: JSON-RPC answers (result or error) whose id differs from the id sent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import msgspec

from battle.events import (
    ChaosEvent,
    HeadObservation,
    Outcome,
    Recording,
    RequestEvent,
    SubscriptionEvent,
    SubscriptionKind,
)
from battle.subs import SubscriptionStats, backfill, subscription_stats


class Slos(msgspec.Struct, frozen=True):
    """The SLOs of one recording; ``None`` is "no data"."""

    requests: int
    success_rate: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    failover_latency_s: float | None
    failover_missed: int | None
    recovery_s: float | None
    recovery_missed: int | None
    gaps: int | None
    duplicates: int | None
    backfill_s: float | None
    backfill_incomplete: int | None
    head_regressions: int | None
    read_your_head_misses: int | None
    peak_rss_bytes: int | None
    non_json: int | None
    http_5xx: int | None
    html: int | None
    timeouts: int | None
    id_mismatches: int | None
    dropped_events: int
    subscriptions: tuple[SubscriptionStats, ...] = ()


def is_success(event: RequestEvent) -> bool:
    if event.outcome is Outcome.RESULT:
        return True
    return event.outcome is Outcome.JSONRPC_ERROR and event.error_expected


def success_rate(requests: Sequence[RequestEvent]) -> float | None:
    if not requests:
        return None
    return sum(1 for r in requests if is_success(r)) / len(requests)


def percentile(samples: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (0 < p <= 100) of ``samples``; None when empty."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latencies(requests: Iterable[RequestEvent]) -> list[float]:
    return [r.answered_at - r.sent_at for r in requests if r.answered_at is not None]


def failover(
    chaos: ChaosEvent, requests: Sequence[RequestEvent]
) -> tuple[float | None, bool | None]:
    """(latency, missed) for one fault; (None, None) when it has no target or no traffic."""
    if chaos.target is None:
        return None, None
    served = [
        r.answered_at
        for r in requests
        if r.answered_at is not None
        and r.answered_at >= chaos.started_at
        and r.provider is not None
        and r.provider != chaos.target
        and is_success(r)
    ]
    if served:
        return min(served) - chaos.started_at, False
    if any(r.sent_at >= chaos.started_at for r in requests):
        return None, True
    return None, None


def recovery(
    chaos: ChaosEvent, requests: Sequence[RequestEvent]
) -> tuple[float | None, bool | None]:
    """(time, missed) from one fault's end; (None, None) when it never ended or had no
    traffic after it."""
    if chaos.ended_at is None:
        return None, None
    end = chaos.ended_at
    after = [r for r in requests if r.sent_at >= end]
    served = [
        r.answered_at
        for r in after
        if r.answered_at is not None and r.provider is not None and is_success(r)
    ]
    if served:
        return min(served) - end, False
    return (None, True) if after else (None, None)


def head_regressions(heads: Sequence[HeadObservation]) -> int | None:
    if not heads:
        return None
    highest: dict[str, int] = {}
    count = 0
    for head in sorted(heads, key=lambda h: h.at):
        seen = highest.get(head.client)
        if seen is not None and head.number < seen:
            count += 1
        highest[head.client] = head.number if seen is None else max(seen, head.number)
    return count


def read_your_head_misses(
    requests: Sequence[RequestEvent],
    heads: Sequence[HeadObservation],
    subscriptions: Sequence[SubscriptionEvent],
) -> int | None:
    reads = [r for r in requests if r.block is not None and r.outcome is Outcome.RESULT]
    if not reads:
        return None
    told = [(h.client, h.number, h.at) for h in heads] + [
        (s.client, s.number, s.received_at)
        for s in subscriptions
        if s.kind is SubscriptionKind.HEADS and not s.removed
    ]
    misses = 0
    for read in reads:
        if not read.empty_result or read.block is None:
            continue
        block = read.block
        if any(c == read.client and n >= block and at <= read.sent_at for c, n, at in told):
            misses += 1
    return misses


def _count(requests: Sequence[RequestEvent], outcome: Outcome) -> int | None:
    return sum(1 for r in requests if r.outcome is outcome) if requests else None


def _http_5xx(requests: Sequence[RequestEvent]) -> int | None:
    if not requests:
        return None
    return sum(
        1
        for r in requests
        if r.outcome is Outcome.HTTP_5XX or (r.http_status is not None and r.http_status >= 500)
    )


def _id_mismatches(requests: Sequence[RequestEvent]) -> int | None:
    answers = [r for r in requests if r.outcome in (Outcome.RESULT, Outcome.JSONRPC_ERROR)]
    if not answers:
        return None
    return sum(1 for r in answers if r.received_id != r.sent_id)


def compute(recording: Recording) -> Slos:
    """Every SLO of ``recording``."""
    reqs = recording.requests
    times = latencies(reqs)
    fails = [failover(c, reqs) for c in recording.chaos]
    fail_times = [t for t, _ in fails if t is not None]
    fail_known = [missed for _, missed in fails if missed is not None]
    recoveries = [recovery(c, reqs) for c in recording.chaos]
    recovery_times = [t for t, _ in recoveries if t is not None]
    recovery_known = [missed for _, missed in recoveries if missed is not None]
    subs = subscription_stats(recording.subscriptions)
    fills = [
        b for c in recording.chaos for b in backfill(c, recording.subscriptions, recording.heads)
    ]
    fill_times = [b for b in fills if b is not None]
    peak = max((r.rss_bytes for r in recording.resources), default=None)
    return Slos(
        requests=len(reqs),
        success_rate=success_rate(reqs),
        latency_p50_s=percentile(times, 50),
        latency_p95_s=percentile(times, 95),
        latency_p99_s=percentile(times, 99),
        failover_latency_s=max(fail_times, default=None),
        failover_missed=sum(fail_known) if fail_known else None,
        recovery_s=max(recovery_times, default=None),
        recovery_missed=sum(recovery_known) if recovery_known else None,
        gaps=sum(s.gaps for s in subs) if subs else None,
        duplicates=sum(s.duplicates for s in subs) if subs else None,
        backfill_s=max(fill_times, default=None),
        backfill_incomplete=sum(1 for b in fills if b is None) if fills else None,
        head_regressions=head_regressions(recording.heads),
        read_your_head_misses=read_your_head_misses(reqs, recording.heads, recording.subscriptions),
        peak_rss_bytes=peak,
        non_json=_count(reqs, Outcome.NON_JSON),
        http_5xx=_http_5xx(reqs),
        html=_count(reqs, Outcome.HTML),
        timeouts=_count(reqs, Outcome.TIMEOUT),
        id_mismatches=_id_mismatches(reqs),
        dropped_events=recording.dropped.total(),
        subscriptions=tuple(subs),
    )
