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
  before the fault started. The fault's *recovery* is its ``ended_at`` (its ``started_at`` if it
  never ended); ``base`` is the highest number the stream had before the start, ``target`` the
  highest number anyone (any client's heads or head observations) knew of at recovery. The
  stream completes at the first ``received_at`` (at or after the start) by which it has received
  every number in ``base+1..target``; the backfill time is ``max(0, completion - recovery)``:
  how long after recovery the client lacked blocks that existed at recovery (0 when it never
  lacked them, e.g. a seamless failover). Never complete: ``None``, an incomplete backfill.
  ``target <= base``: the chain did not advance, nothing to backfill, no sample.
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
    recovery = chaos.ended_at if chaos.ended_at is not None else chaos.started_at
    target = known_head(recovery, subscriptions, heads)
    if target is None:
        return []
    times: list[float | None] = []
    head_events = [s for s in subscriptions if s.kind is SubscriptionKind.HEADS and not s.removed]
    for stream in _streams(head_events).values():
        before = [s.number for s in stream if s.received_at < chaos.started_at]
        if not before or target <= max(before):
            continue
        base = max(before)
        got: set[int] = set()  # numbers in base+1..target received (no range is built)
        done: float | None = None
        for event in stream:
            if event.received_at < chaos.started_at:
                continue
            if base < event.number <= target:
                got.add(event.number)
            if len(got) == target - base:
                done = max(0.0, event.received_at - recovery)
                break
        times.append(done)
    return times
