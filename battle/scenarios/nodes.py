"""Faults of the nodes themselves (the local devnet): killed, lagging, pruned, forked."""

from __future__ import annotations

from battle.control import Chaos, Need
from battle.scenario import Rate, Scenario
from battle.scenarios.common import (
    FAILOVER,
    HEALTHY,
    SETTLE_S,
    SUBSCRIPTIONS,
    Timeline,
    declare,
    full_providers,
    serving_provider,
)

# --- 1. a provider killed ------------------------------------------------------------------


KILL_AT_S = (3.0, 6.0, 9.0)


async def _provider_killed(c: Chaos) -> None:
    """Kill the subscriptions' upstream, then the provider they moved to (the next by
    priority), then the next. Several kills, because the devnet restarts a node in ~0.2 s:
    a gateway without failover loses only the few requests that meet the dead node before
    it is back (measured: 3 of ~400 whether killed once or twice, success 0.993), too close
    to the threshold to be caught every time."""
    t = Timeline()
    first = serving_provider(c)
    victims = [first, *(p for p in full_providers(c) if p != first)]
    for at, victim in zip(KILL_AT_S, victims, strict=False):
        await t.at(at)
        await c.kill(victim)  # the devnet restarts it and catches it up by itself


PROVIDER_KILLED = Scenario(
    name="provider-killed",
    summary="SIGKILL the first provider (subscriptions' upstream) at 3 s, the next full one "
    "(where they moved) at 6 s and the next at 9 s; the devnet restarts each",
    duration_s=13,
    chaos=_provider_killed,
    # No backfill threshold: the devnet restarts a killed node in ~0.2 s (measured), within
    # one block, so by the kill's recovery nobody knows a newer head and backfill has no
    # sample ("no data"); gaps and duplicates show whether the subscriptions moved cleanly.
    thresholds=declare(*HEALTHY, "read_your_head_misses == 0", *FAILOVER, *SUBSCRIPTIONS),
    rate=Rate(20.0),
    needs=frozenset({Need.NODES, Need.WEBSOCKET}),
    quick=True,
)


# --- 5. a lagging node ---------------------------------------------------------------------

LAG_BLOCKS = 8  # at the devnet's 1 s block time


async def _lagging_node(c: Chaos) -> None:
    t = Timeline()
    target = serving_provider(c)
    await t.at(3)
    c.pause(target)
    await t.at(3 + LAG_BLOCKS)
    await c.resume(target)  # returns once it has replayed the blocks it missed


LAGGING_NODE = Scenario(
    name="lagging-node",
    summary=f"stop mining on the first provider (subscriptions' upstream) for ~{LAG_BLOCKS} "
    "blocks from 3 s, then catch it up",
    duration_s=3 + LAG_BLOCKS + SETTLE_S + 1,
    chaos=_lagging_node,
    thresholds=declare(
        *HEALTHY, "read_your_head_misses == 0", *SUBSCRIPTIONS, "backfill_incomplete == 0"
    ),
    rate=Rate(20.0),
    needs=frozenset({Need.NODES, Need.WEBSOCKET}),
    quick=True,
)


# --- 6. a pruned node asked for history ----------------------------------------------------


async def _pruned_history(c: Chaos) -> None:
    """Nothing to inject: the fault is the pruned node itself, which the fresh gateway does
    not yet know is pruned and routes history reads to like any other (load-balanced)."""


PRUNED_HISTORY = Scenario(
    name="pruned-history",
    summary="no injected fault: the pruned provider gets its share of the workload's history "
    "reads (eth_getBalance at old blocks) and a fresh gateway must learn to route them away",
    duration_s=12,
    chaos=_pruned_history,
    thresholds=declare(*HEALTHY),  # no fault event: no failover or backfill to measure
    rate=Rate(25.0),
    needs=frozenset({Need.PRUNED}),
)


# --- 7. a forked node ----------------------------------------------------------------------


async def _forked_node(c: Chaos) -> None:
    t = Timeline()
    target = serving_provider(c)
    await t.at(3)
    await c.fork(target)  # it mines a block only it has at the next height, then stops
    await t.at(9)
    await c.heal(target)  # back on the common chain, caught up


FORKED_NODE = Scenario(
    name="forked-node",
    summary="fork the first provider (subscriptions' upstream) onto a block only it has at "
    "3 s, heal it at 9 s",
    duration_s=14,
    chaos=_forked_node,
    # A forked head a subscriber got and the canonical one replacing it is a reorg, neither
    # a gap nor a duplicate; the node's replay after healing must not come through twice.
    thresholds=declare(
        *HEALTHY, "read_your_head_misses == 0", *SUBSCRIPTIONS, "backfill_incomplete == 0"
    ),
    rate=Rate(20.0),
    needs=frozenset({Need.NODES, Need.WEBSOCKET}),
)
