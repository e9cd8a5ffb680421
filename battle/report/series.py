"""The data behind the plots, pure: times relative to a scenario's start, groups, thinning.

No matplotlib here, so what a plot shows is testable without drawing it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from battle.events import (
    Outcome,
    Recording,
    RequestEvent,
    SubscriptionEvent,
    SubscriptionKind,
)
from battle.slo import is_success

#: The label of requests answered without routing metadata (no provider known).
NO_PROVIDER = "(no provider)"

_T = TypeVar("_T")


def origin(recording: Recording) -> float | None:
    """The earliest time anything was recorded: the scenario's time zero."""
    times = [
        *(r.sent_at for r in recording.requests),
        *(s.received_at for s in recording.subscriptions),
        *(c.started_at for c in recording.chaos),
        *(h.at for h in recording.heads),
        *(r.at for r in recording.resources),
    ]
    return min(times, default=None)


def end(recording: Recording) -> float | None:
    """The latest time anything was recorded (a fault still on then ends there)."""
    times = [
        *(r.sent_at if r.answered_at is None else r.answered_at for r in recording.requests),
        *(s.received_at for s in recording.subscriptions),
        *(c.started_at if c.ended_at is None else c.ended_at for c in recording.chaos),
        *(h.at for h in recording.heads),
        *(r.at for r in recording.resources),
    ]
    return max(times, default=None)


def label(text: str | None, width: int = 40) -> str:
    """A run-supplied name made safe to draw: printable, one line, at most ``width`` long."""
    if text is None:
        return NO_PROVIDER
    clean = "".join(
        ch if ch == " " or unicodedata.category(ch)[0] not in "CZ" else "?" for ch in text
    )
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def top_groups(
    items: Iterable[_T], key: Callable[[_T], str], limit: int
) -> list[tuple[str, list[_T]]]:
    """The ``limit`` largest groups of ``items`` by ``key``, largest first (ties by name)."""
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return ranked[:limit]


def provider_of(request: RequestEvent) -> str:
    return label(request.provider)


def method_of(request: RequestEvent) -> str:
    return label(request.method)


def thin(points: Sequence[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` of ``points``: the highest tenth by y (the outliers a reader looks
    for) and an even spread over the rest, in x order. All of them when they fit."""
    if len(points) <= limit:
        return sorted(points)
    if limit <= 0:
        return []
    order = sorted(range(len(points)), key=lambda i: points[i][1], reverse=True)
    keep = set(order[: limit // 10])
    rest = [i for i in range(len(points)) if i not in keep]
    room = limit - len(keep)
    step = len(rest) / room
    keep.update(rest[int(k * step)] for k in range(room))
    return sorted(points[i] for i in keep)


class Timeline:
    """One provider's requests as (seconds since start, latency) points, split by outcome."""

    def __init__(self, requests: Sequence[RequestEvent], t0: float) -> None:
        self.ok: list[tuple[float, float]] = []
        self.failed: list[tuple[float, float]] = []
        self.hung: list[float] = []  # sent_at of requests never answered
        for r in requests:
            if r.answered_at is None or r.outcome is Outcome.TIMEOUT:
                self.hung.append(r.sent_at - t0)
                continue
            point = (r.sent_at - t0, r.answered_at - r.sent_at)
            (self.ok if is_success(r) else self.failed).append(point)


class HeadStreams:
    """Per client, the ``newHeads`` numbers it received as (seconds since start, number), a
    client's reconnections (new subscription ids) kept as one series; and where, within one
    subscription, a number was skipped (``gaps``) or a hash came twice (``duplicates``)."""

    def __init__(self, recording: Recording, t0: float) -> None:
        heads = [
            s for s in recording.subscriptions if s.kind is SubscriptionKind.HEADS and not s.removed
        ]
        self.clients = [
            (client, sorted((s.received_at - t0, float(s.number)) for s in events))
            for client, events in top_groups(heads, lambda s: label(s.client), limit=8)
        ]
        self.gaps: list[tuple[float, float]] = []
        self.duplicates: list[tuple[float, float]] = []
        streams: dict[tuple[str, str], list[SubscriptionEvent]] = {}
        for event in sorted(heads, key=lambda e: e.received_at):
            streams.setdefault((event.client, event.subscription), []).append(event)
        for stream in streams.values():
            self._marks(stream, t0)

    def _marks(self, stream: Sequence[SubscriptionEvent], t0: float) -> None:
        seen: set[str] = set()
        top: int | None = None
        for event in stream:
            point = (event.received_at - t0, float(event.number))
            if event.hash in seen:
                self.duplicates.append(point)
            elif top is not None and event.number > top + 1:
                self.gaps.append(point)
            seen.add(event.hash)
            top = event.number if top is None else max(top, event.number)


def chaos_lanes(recording: Recording) -> list[str]:
    """One lane per distinct (kind, target), in order of first appearance."""
    return list(dict.fromkeys(chaos_name(c.kind, c.target) for c in recording.chaos))


def chaos_name(kind: str, target: str | None) -> str:
    return f"{label(kind, 20)} → {label(target) if target is not None else 'all'}"
