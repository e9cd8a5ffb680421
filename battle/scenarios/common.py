"""What every scenario shares: the timeline, the provider picks and the threshold sets."""

from __future__ import annotations

import trio

from battle.control import Chaos
from battle.thresholds import Threshold, thresholds

#: Success rate of a healthy gateway while some (not all) providers misbehave.
HEALTHY_SUCCESS = 0.995
#: Peak gateway RSS: a leak guard. The daemon idles at ~66 MB (measured), a 20 s battle
#: scenario has no business holding more than a few times that.
RSS_BOUND = 300e6
#: Seconds every scenario leaves between its last recovery and its end.
SETTLE_S = 3.0

HYGIENE: tuple[str, ...] = (
    "non_json == 0",
    "http_5xx == 0",
    "html == 0",
    "id_mismatches == 0",
    "dropped_events == 0",
    f"peak_rss_bytes <= {RSS_BOUND:g}",
)
HEALTHY = (f"success_rate >= {HEALTHY_SUCCESS}", "timeouts == 0", "head_regressions == 0")
FAILOVER = ("failover_latency_s <= 2", "failover_missed == 0")
SUBSCRIPTIONS = ("gaps == 0", "duplicates == 0")
BACKFILL = ("backfill_s <= 3", "backfill_incomplete == 0")


def declare(*texts: str) -> tuple[Threshold, ...]:
    return thresholds(*texts, *HYGIENE)


class Timeline:
    """Offsets from the scenario's start: ``await t.at(4)`` returns 4 s after it began."""

    def __init__(self) -> None:
        self.start = trio.current_time()

    async def at(self, offset_s: float) -> None:
        await trio.sleep_until(self.start + offset_s)


def serving_provider(c: Chaos) -> str:
    """The provider serving the most: the first in config order, which also holds the
    gateway's upstream subscriptions (they go by priority, then config order)."""
    return c.providers[0]


def full_providers(c: Chaos) -> list[str]:
    """The providers that keep full state, in config order (faults go there, so the others
    left to serve still include a full node for history reads)."""
    kept = [p for p in c.providers if p != c.pruned]
    return kept or list(c.providers)
