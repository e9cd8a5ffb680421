"""The chaos scenarios against a fake Chaos that records every call (on a MockClock), and their
thresholds against hand-built recordings of a gateway that fails over and one that does not."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import trio
import trio.testing

from battle.control import Need
from battle.events import ChaosEvent, HeadObservation, Outcome, Recording, ResourceSample
from battle.scenario import Scenario
from battle.scenarios import ALL, BASELINE, HEALTHY_SUCCESS, QUICK, SETTLE_S, by_name
from battle.scenarios.network import (
    ALL_DOWN_SUCCESS,
    ALL_DOWN_THEN_RECOVERY,
    LAST_BACK_AFTER_S,
    OUTAGE_AT_S,
    OUTAGE_S,
    RECOVERY_ALLOWANCE_S,
)
from battle.slo import compute
from battle.thresholds import SLO_NAMES, evaluate, parse_threshold
from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import LogsLimit
from tests.battle.builders import hd, req, seen
from tests.battle.test_battle_thresholds import recorded_run

PROVIDERS = ("p0", "p1", "p2", "p3")
PRUNED = "p3"
SCENARIOS = (BASELINE, *ALL)
SUBSCRIPTION_SLOS = {"gaps", "duplicates", "backfill_s", "backfill_incomplete"}
FAILOVER_SLOS = {"failover_latency_s", "failover_missed"}

# What each Chaos call needs (restore needs what the cut it ends needed).
NEED_OF = {
    "kill": Need.NODES,
    "pause": Need.NODES,
    "resume": Need.NODES,
    "fork": Need.NODES,
    "heal": Need.NODES,
    "cut": Need.PROXY,
    "cut_ws": Need.WEBSOCKET,
    "set_fault": Need.PROXY,
    "set_delay": Need.PROXY,
    "set_logs_limit": Need.PROXY,
    "set_retry_after": Need.PROXY,
    "reload": Need.RELOAD,
}


class FakeChaos:
    """Records every call and the faults it opens and closes, checking each against the
    scenario's needs; the async actions take ``action_s`` (a node catching up, a reload)."""

    def __init__(self, needs: frozenset[Need], *, action_s: float = 0.0) -> None:
        self.needs = needs
        self.action_s = action_s
        self.start = trio.current_time()
        self.calls: list[tuple[float, str, str | None]] = []
        self.violations: list[str] = []
        self.open: dict[tuple[str, str | None, Any], float] = {}
        self.faults: list[ChaosEvent] = []
        self.settings: dict[str, Any] = {
            "routing": {"max_attempts": 3},
            "chains": {
                "devnet": {
                    "chain_id": 31337,
                    "providers": [{"id": p, "url": f"http://{p}"} for p in PROVIDERS],
                }
            },
        }
        self.original = copy.deepcopy(self.settings)

    @property
    def providers(self) -> tuple[str, ...]:
        return PROVIDERS

    @property
    def pruned(self) -> str | None:
        return PRUNED

    def has(self, need: Need) -> bool:
        return need in self.needs

    def _now(self) -> float:
        return trio.current_time() - self.start

    def _call(self, name: str, provider: str | None, need: Need | None = None) -> None:
        self.calls.append((self._now(), name, provider))
        need = need or NEED_OF[name]
        if need not in self.needs:
            self.violations.append(f"{name}({provider}) needs {need.value}, not declared")
        if provider is not None and provider not in PROVIDERS:
            self.violations.append(f"{name}: unknown provider {provider!r}")

    def _begin(self, kind: str, target: str | None, key: Any = None) -> None:
        if (kind, target, key) in self.open:
            self.violations.append(f"{kind} on {target} started twice without ending")
        self.open[kind, target, key] = self._now()

    def _end(self, kind: str, target: str | None, key: Any = None) -> bool:
        started = self.open.pop((kind, target, key), None)
        if started is None:
            return False
        self.faults.append(ChaosEvent(kind, target, started, self._now()))
        return True

    async def kill(self, provider: str) -> None:
        self._call("kill", provider)
        at = self._now()
        await trio.sleep(self.action_s)  # the node restarting and catching up
        self.faults.append(ChaosEvent("kill", provider, at, self._now()))

    def pause(self, provider: str) -> None:
        self._call("pause", provider)
        self._begin("lag", provider)

    async def resume(self, provider: str) -> None:
        self._call("resume", provider)
        await trio.sleep(self.action_s)
        if not self._end("lag", provider):
            self.violations.append(f"resume({provider}) without pause")

    async def fork(self, provider: str) -> None:
        self._call("fork", provider)
        await trio.sleep(self.action_s)
        self._begin("fork", provider)

    async def heal(self, provider: str) -> None:
        self._call("heal", provider)
        await trio.sleep(self.action_s)
        if not self._end("fork", provider):
            self.violations.append(f"heal({provider}) without fork")

    def cut(self, provider: str) -> None:
        self._call("cut", provider)
        self._begin("cut", provider)

    def cut_ws(self, provider: str) -> None:
        self._call("cut_ws", provider)
        self._begin("ws_cut", provider)

    def restore(self, provider: str) -> None:
        if ("cut", provider, None) in self.open:
            self._call("restore", provider, Need.PROXY)
            self._end("cut", provider)
        elif ("ws_cut", provider, None) in self.open:
            self._call("restore", provider, Need.WEBSOCKET)
            self._end("ws_cut", provider)
        else:
            self.violations.append(f"restore({provider}) with nothing cut")

    def set_fault(
        self, provider: str, fault: Fault | None, *, methods: frozenset[str] | None = None
    ) -> None:
        self._call("set_fault", provider)
        if fault is None:
            if not self._end("fault", provider, methods):
                self.violations.append(f"set_fault({provider}, None, {methods}) with none set")
        else:
            self._begin("fault", provider, methods)

    def set_delay(self, provider: str, seconds: float) -> None:
        self._call("set_delay", provider)
        if seconds == 0:
            if not self._end("delay", provider):
                self.violations.append(f"set_delay({provider}, 0) with no delay")
        else:
            self._begin("delay", provider)

    def set_logs_limit(self, provider: str, limit: LogsLimit | None) -> None:
        self._call("set_logs_limit", provider)
        if limit is None:
            if not self._end("logs_limit", provider):
                self.violations.append(f"set_logs_limit({provider}, None) with none set")
        else:
            self._begin("logs_limit", provider)

    def set_retry_after(self, provider: str, seconds: int) -> None:
        self._call("set_retry_after", provider)

    async def reload(self, edit: Any, *, kind: str) -> None:
        self._call("reload", None)
        edit(self.settings)
        edit(self.settings)  # an edit applied twice changes nothing more
        if not self.chain_table(self.settings)["providers"]:
            self.violations.append(f"{kind} left the chain without providers")
        at = self._now()
        await trio.sleep(self.action_s)  # until /health shows the new generation
        self.faults.append(ChaosEvent(kind, None, at, self._now()))

    def chain_table(self, settings: dict[str, Any]) -> dict[str, Any]:
        table: dict[str, Any] = settings["chains"]["devnet"]
        return table


async def run_chaos(scenario: Scenario, action_s: float) -> FakeChaos:
    chaos = FakeChaos(scenario.needs, action_s=action_s)
    await scenario.chaos(chaos)
    return chaos


# --- each scenario's timeline ----------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_chaos_acts_within_its_needs_ends_every_fault_and_leaves_time_to_recover(
    scenario: Scenario, autojump_clock: trio.testing.MockClock
) -> None:
    chaos = await run_chaos(scenario, action_s=1.0)
    assert trio.current_time() - chaos.start <= scenario.duration_s
    assert chaos.violations == []
    assert chaos.open == {}, "faults left on"
    assert chaos.settings == chaos.original, "the config is not back as it was"
    last_end = max((f.ended_at or 0.0 for f in chaos.faults), default=0.0)
    assert last_end <= scenario.duration_s - SETTLE_S
    assert [f for f in chaos.faults if f.started_at < 1.0] == [], "no warm-up before the fault"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_chaos_returns_by_its_duration_even_when_actions_are_slow(
    scenario: Scenario, autojump_clock: trio.testing.MockClock
) -> None:
    chaos = await run_chaos(scenario, action_s=2.0)
    assert trio.current_time() - chaos.start <= scenario.duration_s
    assert chaos.open == {}


async def test_the_scenarios_attack_what_the_issue_names(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def calls(name: str) -> list[tuple[float, str, str | None]]:
        return (await run_chaos(by_name(name), 0.0)).calls

    killed = [(3.0, "kill", "p0"), (6.0, "kill", "p1"), (9.0, "kill", "p2")]
    assert await calls("provider-killed") == killed
    flaps = [c for c in await calls("provider-flapping") if c[1] == "cut"]
    assert [t for t, _, _ in flaps] == [2.0, 5.0, 8.0, 11.0]
    lag = await calls("lagging-node")
    assert [(t, n) for t, n, _ in lag] == [(3.0, "pause"), (11.0, "resume")]
    assert {p for _, n, p in await calls("rate-limited") if n == "set_fault"} == {"p0", "p1"}
    assert all(p != PRUNED for _, _, p in await calls("getlogs-limits"))
    cuts = await calls("all-down-then-recovery")
    assert {p for _, n, p in cuts if n == "cut"} == set(PROVIDERS)
    assert await calls("pruned-history") == []


async def test_reload_takes_the_serving_provider_out_and_puts_it_back_where_it_was(
    autojump_clock: trio.testing.MockClock,
) -> None:
    chaos = FakeChaos(by_name("reload-removes-serving").needs)
    seen_ids: list[list[str]] = []
    real_reload = chaos.reload

    async def spy(edit: Any, *, kind: str) -> None:
        await real_reload(edit, kind=kind)
        seen_ids.append([p["id"] for p in chaos.chain_table(chaos.settings)["providers"]])

    chaos.reload = spy  # type: ignore[method-assign]
    await by_name("reload-removes-serving").chaos(chaos)
    assert seen_ids == [["p1", "p2", "p3"], list(PROVIDERS)]
    assert [f.kind for f in chaos.faults] == ["reload-remove", "reload-add"]


# --- the declarations ----------------------------------------------------------------------


def test_names_are_unique_and_found_by_name() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) == 13
    assert all(by_name(name).name == name for name in names)
    with pytest.raises(KeyError, match="known: baseline, provider-killed"):
        by_name("provider-kiled")


def test_quick_is_the_representative_subset_and_both_fit_their_budgets() -> None:
    assert set(QUICK) <= set(ALL)
    assert [s.name for s in QUICK] == [
        "provider-killed",
        "rate-limited",
        "lagging-node",
        "ws-cuts",
        "all-down-then-recovery",
    ]
    assert sum(s.duration_s for s in QUICK) <= 75  # make battle-quick: ~70 s of scenarios
    # make battle: ~3.5 min of scenarios, with room for a fresh gateway per scenario
    assert sum(s.duration_s for s in (BASELINE, *ALL)) <= 180
    assert all(12 <= s.duration_s <= 20 for s in ALL)
    assert BASELINE.duration_s <= 10


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_thresholds_name_real_slos_and_print_as_they_parse(scenario: Scenario) -> None:
    assert scenario.thresholds
    for threshold in scenario.thresholds:
        assert threshold.slo in SLO_NAMES
        assert parse_threshold(str(threshold)) == threshold
    slos = [t.slo for t in scenario.thresholds]
    assert len(slos) == len(set(slos)), "one threshold per SLO"
    for always in ("success_rate", "non_json", "http_5xx", "html", "id_mismatches"):
        assert always in slos


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_thresholds_only_ask_for_what_the_scenario_can_measure(
    scenario: Scenario, autojump_clock: trio.testing.MockClock
) -> None:
    """A SLO with no data breaches: subscription SLOs need the subscribers (WebSocket),
    failover SLOs a fault with a target, backfill SLOs a fault at all."""
    declared = {t.slo for t in scenario.thresholds}
    faults = (await run_chaos(scenario, 1.0)).faults
    if declared & SUBSCRIPTION_SLOS:
        assert Need.WEBSOCKET in scenario.needs and scenario.subscribe
    if declared & FAILOVER_SLOS:
        assert any(f.target is not None for f in faults)
    if declared & {"backfill_s", "backfill_incomplete"}:
        assert faults


def test_baseline_fits_any_target() -> None:
    assert BASELINE.needs == frozenset()
    assert not BASELINE.subscribe and not BASELINE.web3
    assert {t.slo for t in BASELINE.thresholds}.isdisjoint(SUBSCRIPTION_SLOS | FAILOVER_SLOS)


# --- provider-killed against recordings ----------------------------------------------------

KILLED = by_name("provider-killed").thresholds


def test_priority_routing_without_failover_breaches_provider_killed() -> None:
    """The SLO tests' recording: p1 first, killed from 20 s to 40 s."""
    assert evaluate(compute(recorded_run(failover=True)), KILLED) == []
    breached = {b.threshold.slo for b in evaluate(compute(recorded_run(failover=False)), KILLED)}
    assert breached == {
        "success_rate",
        "timeouts",
        "failover_latency_s",
        "failover_missed",
        "gaps",
    }


KILL_AT, BACK_AT, RUN_S, RPS = 4.0, 6.0, 13, 20
#: Consecutive connection failures that open a breaker, on each of HTTP and WebSocket.
BREAKER_OPENS_AFTER = 2 * 3


def load_balanced_run(*, failover: bool) -> Recording:
    """20 requests a second spread over p0..p3 in turn; p0 killed at 4 s, answering again at
    6 s. With failover the requests that met the dead p0 are retried on p1 (30 ms later);
    without (``max_attempts = 1``) they fail until p0's breakers open, after which routing
    skips p0 anyway: the narrowest breakage a gateway without failover shows."""
    requests = []
    failed = 0
    for tick in range(RUN_S * RPS):
        t = tick / RPS
        provider = PROVIDERS[tick % len(PROVIDERS)]
        block = int(t) if tick % RPS == 0 and t >= 1 else None  # reads the head it was told
        if provider == "p0" and KILL_AT <= t < BACK_AT:
            if failover:
                requests.append(req(t, 0.04, provider="p1", block=block))
                continue
            if failed < BREAKER_OPENS_AFTER:
                failed += 1
                requests.append(req(t, 0.005, Outcome.JSONRPC_ERROR, provider=None))
                continue
            provider = "p1"
        requests.append(req(t, 0.01, provider=provider, block=block))
    return Recording(
        requests=tuple(requests),
        subscriptions=tuple(hd(n, n + 0.05) for n in range(1, RUN_S)),
        chaos=(ChaosEvent("kill", "p0", KILL_AT, BACK_AT),),
        heads=tuple(seen(n, float(n)) for n in range(1, RUN_S)),
        resources=(ResourceSample(70_000_000, 0.0), ResourceSample(90_000_000, 6.0)),
    )


def test_load_balanced_routing_without_failover_breaches_provider_killed() -> None:
    good = compute(load_balanced_run(failover=True))
    assert evaluate(good, KILLED) == []
    assert good.success_rate == 1.0
    assert good.failover_latency_s == pytest.approx(0.04)  # the request at 4 s, retried
    broken = compute(load_balanced_run(failover=False))
    assert [b.threshold.slo for b in evaluate(broken, KILLED)] == ["success_rate"]
    assert broken.success_rate == pytest.approx(1 - BREAKER_OPENS_AFTER / (RUN_S * RPS))
    assert broken.success_rate is not None and broken.success_rate < HEALTHY_SUCCESS


# --- all-down-then-recovery against recordings ---------------------------------------------


def test_the_all_down_success_floor_is_the_share_of_the_run_with_providers_up() -> None:
    up = 1 - (OUTAGE_S + RECOVERY_ALLOWANCE_S) / ALL_DOWN_THEN_RECOVERY.duration_s
    assert math.floor(up * 100) / 100 == ALL_DOWN_SUCCESS
    assert f"success_rate >= {ALL_DOWN_SUCCESS}" in map(str, ALL_DOWN_THEN_RECOVERY.thresholds)


def all_down_run(*, recovers_after_s: float, reconnect_s: float = 3.5) -> Recording:
    """Every provider cut from 4 s, p1..p3 back at 8 s and p0 at 10 s, at a constant 20
    requests a second: each request until the gateway serves again gets a clean JSON-RPC error
    at once; the subscription's upstream reconnects ``reconnect_s`` after the restore (or once
    the gateway serves again) and backfills what it missed in a burst."""
    duration = ALL_DOWN_THEN_RECOVERY.duration_s
    restored = OUTAGE_AT_S + OUTAGE_S
    serving_again = restored + recovers_after_s
    requests = []
    for tick in range(int(duration * RPS)):
        t = tick / RPS
        if OUTAGE_AT_S <= t < serving_again:
            requests.append(req(t, 0.002, Outcome.JSONRPC_ERROR, provider=None))
        else:
            requests.append(req(t, 0.01, provider=PROVIDERS[tick % len(PROVIDERS)]))
    resumed = max(restored + reconnect_s, serving_again)
    heads = []
    for n in range(1, int(duration)):
        if n + 0.05 < OUTAGE_AT_S or n + 0.05 >= resumed:
            heads.append(hd(n, n + 0.05))
        elif resumed < duration:
            heads.append(hd(n, resumed + n / 100))
    cuts = tuple(
        ChaosEvent("cut", p, OUTAGE_AT_S, restored + (LAST_BACK_AFTER_S if p == "p0" else 0))
        for p in PROVIDERS
    )
    return Recording(
        requests=tuple(requests),
        subscriptions=tuple(sorted(heads, key=lambda h: h.received_at)),
        chaos=cuts,
        heads=tuple(
            HeadObservation("c", n, float(n))
            for n in range(1, int(duration))
            if not OUTAGE_AT_S <= n < serving_again
        ),
        resources=(ResourceSample(80_000_000, 0.0),),
    )


def test_a_gateway_that_recovers_passes_all_down_and_one_waiting_out_its_breakers_breaches() -> (
    None
):
    thresholds = ALL_DOWN_THEN_RECOVERY.thresholds
    good = compute(all_down_run(recovers_after_s=1.0))
    assert evaluate(good, thresholds) == []
    assert good.gaps == 0 and good.backfill_s == pytest.approx(1.6)  # 4..10 at 11.6 s
    # Breakers opened in the outage wait their 60 s recovery timeout: never back in this run.
    stuck = compute(all_down_run(recovers_after_s=60.0))
    breached = {b.threshold.slo for b in evaluate(stuck, thresholds)}
    assert breached == {"success_rate", "failover_missed", "backfill_s", "backfill_incomplete"}
    # Recovering 3.5 s after the restore (2 s allowed) loses too many requests, and no client
    # knew the head again by the last restore, so backfill could not be shown either.
    slow = compute(all_down_run(recovers_after_s=3.5))
    breached = {b.threshold.slo for b in evaluate(slow, thresholds)}
    assert breached == {"success_rate", "backfill_s", "backfill_incomplete"}
