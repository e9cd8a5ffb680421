"""Faults of the network: a provider flapping, WebSocket cuts, every provider down."""

from __future__ import annotations

import math

from battle.control import Chaos, Need
from battle.scenario import Arrival, Rate, Scenario
from battle.scenarios.common import (
    BACKFILL,
    FAILOVER,
    HEALTHY,
    SETTLE_S,
    SUBSCRIPTIONS,
    Timeline,
    declare,
    serving_provider,
)

# --- 2. a provider flapping ----------------------------------------------------------------

FLAP_PERIOD_S = 1.5
FLAPS = 4
_LAST_RESTORE_S = 2 + (2 * FLAPS - 1) * FLAP_PERIOD_S


async def _provider_flapping(c: Chaos) -> None:
    t = Timeline()
    target = serving_provider(c)
    for flap in range(FLAPS):
        await t.at(2 + 2 * flap * FLAP_PERIOD_S)
        c.cut(target)
        await t.at(2 + (2 * flap + 1) * FLAP_PERIOD_S)
        c.restore(target)


PROVIDER_FLAPPING = Scenario(
    name="provider-flapping",
    summary=f"cut the first provider (HTTP and WS) for {FLAP_PERIOD_S:g} s, restore it for "
    f"{FLAP_PERIOD_S:g} s, {FLAPS} times",
    duration_s=_LAST_RESTORE_S + SETTLE_S + 0.5,
    chaos=_provider_flapping,
    thresholds=declare(*HEALTHY, *FAILOVER, *SUBSCRIPTIONS),
    rate=Rate(20.0, Arrival.CONSTANT),
    needs=frozenset({Need.PROXY, Need.WEBSOCKET}),
)


# --- 10. WebSocket cuts during newHeads and logs subscriptions -----------------------------

WS_CUT_S = 3.0


async def _ws_cuts(c: Chaos) -> None:
    t = Timeline()
    serving = serving_provider(c)
    # The second cut takes the first two providers: the subscriptions moved off the first
    # at the first cut, most likely to the second, and may have moved back since.
    again = list(dict.fromkeys(c.providers[:2]))
    await t.at(3)
    c.cut_ws(serving)
    await t.at(3 + WS_CUT_S)
    c.restore(serving)
    await t.at(8)
    for provider in again:
        c.cut_ws(provider)
    await t.at(8 + WS_CUT_S)
    for provider in again:
        c.restore(provider)


WS_CUTS = Scenario(
    name="ws-cuts",
    summary=f"cut the WebSocket of the subscriptions' upstream at 3 s and of the first two "
    f"providers at 8 s, {WS_CUT_S:g} s each, under newHeads and logs subscriptions",
    duration_s=8 + WS_CUT_S + SETTLE_S,
    chaos=_ws_cuts,
    thresholds=declare(*HEALTHY, *FAILOVER, *SUBSCRIPTIONS, *BACKFILL),
    rate=Rate(20.0),
    needs=frozenset({Need.WEBSOCKET}),
    quick=True,
)


# --- 12. every provider down, then recovery ------------------------------------------------

OUTAGE_AT_S = 4.0
OUTAGE_S = 4.0
#: The first provider comes back this long after the others. Besides being how outages end,
#: it is what lets backfill be measured: a fault's backfill target is the head known to any
#: client at its recovery, and when every provider comes back at once nobody has been told
#: of a block since the outage began (no sample, "no data"); by the last restore the clients
#: know the head again, and the subscriptions must have every block up to it.
LAST_BACK_AFTER_S = 2.0
#: How soon after the restore requests must succeed again: recovery mode probes every open
#: breaker at once and then every 0.25-0.5 s (lasso.core.recovery), two successes close one.
RECOVERY_ALLOWANCE_S = 2.0
#: Subscriptions come back with an upstream WebSocket, whose reconnect backoff (0.5 s
#: doubling, 20% jitter) puts the first attempt after a 4 s outage up to ~5 s after the
#: restore, ~3 s after the last one.
OUTAGE_BACKFILL_S = 6.0
ALL_DOWN_DURATION_S = 17.0
#: A constant rate sends the same share of requests into every second, so this is the share
#: of the run with providers up: the outage and the recovery allowance are lost.
ALL_DOWN_SUCCESS = (
    math.floor(100 * (1 - (OUTAGE_S + RECOVERY_ALLOWANCE_S) / ALL_DOWN_DURATION_S)) / 100
)


async def _all_down(c: Chaos) -> None:
    t = Timeline()
    last = serving_provider(c)
    await t.at(OUTAGE_AT_S)
    for provider in c.providers:
        c.cut(provider)
    await t.at(OUTAGE_AT_S + OUTAGE_S)
    for provider in c.providers:
        if provider != last:
            c.restore(provider)
    await t.at(OUTAGE_AT_S + OUTAGE_S + LAST_BACK_AFTER_S)
    c.restore(last)


ALL_DOWN_THEN_RECOVERY = Scenario(
    name="all-down-then-recovery",
    summary=f"cut every provider (HTTP and WS) at {OUTAGE_AT_S:g} s for {OUTAGE_S:g} s, then "
    f"restore them, the first {LAST_BACK_AFTER_S:g} s after the others",
    duration_s=ALL_DOWN_DURATION_S,
    chaos=_all_down,
    # During the outage every request gets a clean JSON-RPC error, at once (no hang); after
    # it the gateway recovers within the allowance (success rate), every provider serves
    # again (no missed failover) and the subscriptions resume without a gap, backfilled.
    thresholds=declare(
        f"success_rate >= {ALL_DOWN_SUCCESS}",
        "timeouts == 0",
        "head_regressions == 0",
        "failover_missed == 0",
        *SUBSCRIPTIONS,
        f"backfill_s <= {OUTAGE_BACKFILL_S:g}",
        "backfill_incomplete == 0",
    ),
    rate=Rate(20.0, Arrival.CONSTANT),
    needs=frozenset({Need.PROXY, Need.WEBSOCKET}),
    quick=True,
)
