"""The battle's chaos scenarios: what is done to which provider, when, and the SLOs it must meet.

:data:`ALL` is the full set (``make battle``), :data:`QUICK` the representative subset
(``make battle-quick``), :data:`BASELINE` a no-chaos health check any target must pass, public
providers included. :func:`by_name` finds one. The scenarios live by what they break:
``nodes`` (killed, lagging, pruned, forked), ``network`` (flapping, WebSocket cuts, every
provider down), ``proxy`` (latency, 429, eth_getLogs limits, unsupported methods), ``reload``;
``common`` has the timeline and the threshold sets.

Each scenario's ``chaos`` coroutine acts only through :class:`battle.control.Chaos`, on a
timeline measured from its own start (:class:`~battle.scenarios.common.Timeline`: absolute
offsets, so a slow action such as ``resume`` catching a node up never pushes the rest late),
ends every fault it starts and returns by ``duration_s``, leaving at least :data:`SETTLE_S`
after the last recovery so the workload and the subscribers show that the gateway recovered
(a fault ended just before the recording stops would make backfill unmeasurable).

Thresholds, read against :mod:`battle.slo`'s definitions:

- A healthy gateway answers every valid request of these scenarios, except while every
  provider is down: the workload's methods are replay-safe or served by the gateway, so a
  fault on some providers costs nothing. :data:`HEALTHY_SUCCESS` (0.995) leaves one request in
  two hundred for the harness's own noise; a gateway that does not fail over loses the
  requests sent to the faulted provider until its breaker opens (``network_threshold`` 3 per
  transport: about 6 of the ~300 requests of a scenario, 0.98) and breaches it.
- Every scenario holds :data:`HYGIENE` (no non-JSON, 5xx, HTML or wrong id; the recording
  complete; RSS under :data:`RSS_BOUND`) and no head regression.
- Failover SLOs are declared only where a fault names a provider (``failover`` has no data
  for a fault with target ``None``, such as a reload). With load-balanced routing other
  providers keep serving throughout, so the failover latency mostly shows that some request
  succeeded elsewhere soon after the fault; ``failover_missed == 0`` that one did at all.
- Subscription SLOs (gaps, duplicates, backfill) are declared only by scenarios that need
  :attr:`Need.WEBSOCKET` (the subscribers run there). Backfill has a sample only when the
  chain advanced during the fault: the fault windows here span two or more 1 s devnet
  blocks; on a chain with 12 s blocks a short fault gives backfill "no data", which
  breaches: that run could not show it.
"""

from __future__ import annotations

from battle.control import Chaos
from battle.scenario import Arrival, Rate, Scenario
from battle.scenarios.common import (
    HEALTHY,
    HEALTHY_SUCCESS,
    HYGIENE,
    RSS_BOUND,
    SETTLE_S,
    declare,
)
from battle.scenarios.network import ALL_DOWN_THEN_RECOVERY, PROVIDER_FLAPPING, WS_CUTS
from battle.scenarios.nodes import FORKED_NODE, LAGGING_NODE, PROVIDER_KILLED, PRUNED_HISTORY
from battle.scenarios.proxy import GETLOGS_LIMITS, LATENCY, RATE_LIMITED, UNSUPPORTED_METHOD
from battle.scenarios.reload import RELOAD_REMOVES_SERVING

__all__ = [
    "ALL",
    "BASELINE",
    "HEALTHY_SUCCESS",
    "HYGIENE",
    "QUICK",
    "RSS_BOUND",
    "SETTLE_S",
    "by_name",
]


# --- the sets --------------------------------------------------------------------------------


async def _nothing(c: Chaos) -> None:
    """No chaos."""


#: A health check without chaos that any target must pass, public providers included: only
#: plain requests (no subscriptions, which need WebSocket providers, and no web3 client).
BASELINE = Scenario(
    name="baseline",
    summary="no fault: plain requests at a steady 15 per second",
    duration_s=8,
    chaos=_nothing,
    thresholds=declare(*HEALTHY, "latency_p99_s <= 3"),
    rate=Rate(15.0, Arrival.CONSTANT),
    web3=False,
    subscribe=False,
)

ALL: tuple[Scenario, ...] = (
    PROVIDER_KILLED,
    PROVIDER_FLAPPING,
    LATENCY,
    RATE_LIMITED,
    LAGGING_NODE,
    PRUNED_HISTORY,
    FORKED_NODE,
    GETLOGS_LIMITS,
    UNSUPPORTED_METHOD,
    WS_CUTS,
    RELOAD_REMOVES_SERVING,
    ALL_DOWN_THEN_RECOVERY,
)

QUICK: tuple[Scenario, ...] = tuple(s for s in ALL if s.quick)


def by_name(name: str) -> Scenario:
    """The scenario called ``name`` (of :data:`ALL`, or :data:`BASELINE`)."""
    for scenario in (BASELINE, *ALL):
        if scenario.name == name:
            return scenario
    known = ", ".join(s.name for s in (BASELINE, *ALL))
    raise KeyError(f"no scenario {name!r}; known: {known}")
