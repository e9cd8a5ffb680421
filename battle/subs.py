"""Subscription SLOs: gaps, duplicates and backfill, from what each client received.

Each (client, subscription) stream is read in ``received_at`` order (ties in record order).

- **Duplicate**: a notification whose key was already received and not since retracted. The key
  of a head is its hash; of a log, its block hash and log index.
- **Reorg** (neither a gap nor a duplicate): a log with ``removed`` set retracts its key (the
  same log may come again); a head with a new hash at a number at or below the highest head
  received replaces that head and every head above it (their hashes may come again), and the
  stream continues from that number.
- **Gap** (``newHeads`` only; logs need not come every block): every block number missing
  between two consecutively received heads, i.e. a head ``n`` after highest head ``top`` with
  ``n > top + 1`` adds ``n - top - 1`` gaps. A gap can only be seen between received heads: heads
  missing before the first or after the last received one are not gaps (a missing tail shows as
  an incomplete backfill instead).
- **Backfill completion time**, per fault and per ``newHeads`` stream that had received a head
  before the fault started: ``base`` is the highest number it had by then, ``target`` the highest
  number anyone (any client, head observations or heads) knew of when the fault ended (its start
  if it never ended). It completes at the first ``received_at`` (after the start) by which the
  stream has received every number in ``base+1..target``; the time is that minus the fault's
  start. Never complete: ``None`` (an incomplete backfill). ``target <= base``: nothing to
  backfill, no sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from battle.events import ChaosEvent, HeadObservation, SubscriptionEvent, SubscriptionKind

_Key = tuple[str, int | None]


class SubscriptionStats(msgspec.Struct, frozen=True):
    client: str
    subscription: str
    received: int
    gaps: int
    duplicates: int
    reorgs: int


def _streams(
    events: Sequence[SubscriptionEvent],
) -> dict[tuple[str, str], list[SubscriptionEvent]]:
    streams: dict[tuple[str, str], list[SubscriptionEvent]] = {}
    for event in sorted(events, key=lambda e: e.received_at):
        streams.setdefault((event.client, event.subscription), []).append(event)
    return streams


def stream_stats(
    client: str, subscription: str, stream: Sequence[SubscriptionEvent]
) -> SubscriptionStats:
    """Gaps, duplicates and reorgs of one client's subscription stream."""
    seen: set[_Key] = set()
    heads: dict[int, str] = {}  # number -> hash of the heads currently held
    top: int | None = None
    gaps = duplicates = reorgs = 0
    for event in stream:
        key = (event.hash, event.log_index)
        if event.removed:
            seen.discard(key)
            reorgs += 1
            continue
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        if event.kind is not SubscriptionKind.HEADS:
            continue
        n = event.number
        if top is not None and n <= top:
            reorgs += 1
            for number in [m for m in heads if m >= n]:
                seen.discard((heads.pop(number), None))
            seen.add(key)
        elif top is not None and n > top + 1:
            gaps += n - top - 1
        heads[n] = event.hash
        top = n
    return SubscriptionStats(client, subscription, len(stream), gaps, duplicates, reorgs)


def subscription_stats(events: Sequence[SubscriptionEvent]) -> list[SubscriptionStats]:
    """One :class:`SubscriptionStats` per (client, subscription), sorted by that pair."""
    streams = _streams(events)
    return [stream_stats(c, s, streams[c, s]) for c, s in sorted(streams)]


def known_head(
    at: float, subscriptions: Sequence[SubscriptionEvent], heads: Sequence[HeadObservation]
) -> int | None:
    """The highest block number any client had been told of at or before ``at``."""
    numbers = [h.number for h in heads if h.at <= at]
    numbers += [
        s.number
        for s in subscriptions
        if s.kind is SubscriptionKind.HEADS and not s.removed and s.received_at <= at
    ]
    return max(numbers, default=None)


def backfill(
    chaos: ChaosEvent,
    subscriptions: Sequence[SubscriptionEvent],
    heads: Sequence[HeadObservation],
) -> list[float | None]:
    """Backfill completion times for one fault, one per ``newHeads`` stream that needed one."""
    end = chaos.ended_at if chaos.ended_at is not None else chaos.started_at
    target = known_head(end, subscriptions, heads)
    if target is None:
        return []
    times: list[float | None] = []
    head_events = [s for s in subscriptions if s.kind is SubscriptionKind.HEADS and not s.removed]
    for stream in _streams(head_events).values():
        before = [s.number for s in stream if s.received_at < chaos.started_at]
        if not before or target <= max(before):
            continue
        missing = set(range(max(before) + 1, target + 1))
        done: float | None = None
        for event in stream:
            if event.received_at < chaos.started_at:
                continue
            missing.discard(event.number)
            if not missing:
                done = event.received_at - chaos.started_at
                break
        times.append(done)
    return times
