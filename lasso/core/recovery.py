"""Recovery mode: pacing the probes of a chain that has no provider available.

Normally an open breaker waits out its recovery deadline (a minute, doubling to
ten) before a probe may go, which is right while other providers serve. When no
provider channel of a chain is available, every client request fails until one
comes back, so waiting is the worst choice: the chain is *in recovery*, and the
shell probes every open breaker of it at once (``alarm``) and then every
``probe_min_s``..``probe_max_s`` seconds (jittered, so providers that failed
together spread out), through ``CircuitBreaker.expedite``. A failed recovery
probe costs the breaker nothing. Clients are told to retry after the probing
interval, not after the breakers' deadlines.

Pure: the shell passes ``now`` and a ``random.Random``.
"""

from __future__ import annotations

import random

import msgspec

__all__ = ["RecoveryPolicy"]


class RecoveryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    probe_min_s: float = 0.25
    probe_max_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.probe_min_s <= self.probe_max_s:
            raise ValueError("need 0 < probe_min_s <= probe_max_s")

    def probe_delay_s(self, rng: random.Random) -> float:
        """Seconds until a recovering provider probes its open breakers again."""
        if self.probe_min_s == self.probe_max_s:
            return self.probe_min_s
        return rng.uniform(self.probe_min_s, self.probe_max_s)

    def alarm_due(self, now: float, last_alarm: float | None) -> bool:
        """Whether a request that found nothing available should wake the probers.

        At most once per ``probe_min_s``: a flood of failing requests is no flood of probes.
        """
        return last_alarm is None or now - last_alarm >= self.probe_min_s

    def retry_after_s(self, breaker_wait_s: float | None) -> float:
        """What a client is told while recovering: the probing interval at most."""
        if breaker_wait_s is None:
            return self.probe_max_s
        return min(breaker_wait_s, self.probe_max_s)
