"""``GET /dashboard/snapshot.json``: every chain of every profile with its providers
(breaker per channel, height, lag, fork state, p50/p99 per method), recent routing
decisions and failovers, subscription counts, operator events and the reload history;
providers by id only, never a URL or a secret."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from lasso.chaos.faults import Fault
from lasso.config import ConfigProblem, Settings
from lasso.dashboard import Dashboard
from lasso.opsevents import BreakerChanged, ClientLimited, Failover, now_stamps
from lasso.reload import ReloadOutcome, ReloadState, Stamp
from lasso.subscriptions.hub import HubStatistics
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.support.asgi import asgi_request


def call(method: str, params: list[Any], n: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": params}).encode()


async def rpc(app: LassoASGI, path: str, body: bytes) -> Any:
    headers = [("content-type", "application/json")]
    return (await asgi_request(app, "POST", path, body, headers=headers)).json()


async def snapshot(app: LassoASGI) -> dict[str, Any]:
    response = await asgi_request(app, "GET", "/dashboard/snapshot.json")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


def chain(snap: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in snap["chains"] if c["key"] == key)


def provider(snap: dict[str, Any], key: str, pid: str) -> dict[str, Any]:
    return next(p for p in chain(snap, key)["providers"] if p["id"] == pid)


async def test_every_chain_of_every_profile_with_its_providers_by_id(app: LassoASGI) -> None:
    gw = app.gateway
    now = trio.current_time()
    testnet = gw.profiles["default"]["testnet"]
    for pid in ("p1", "p2"):
        testnet.observe_head(pid, 100, "0xa100", "0xa099", now)
    testnet.observe_head("p3", 98, "0xb098", "0xa097", now)
    snap = await snapshot(app)
    assert [(c["key"], c["profile"], c["chain"]) for c in snap["chains"]] == [
        ("testnet", "default", "testnet"),
        ("team/teamnet", "team", "teamnet"),
    ]
    rows = [
        (p["id"], p["height"], p["lag"], p["http"]["circuit"], p["ws"])
        for p in chain(snap, "testnet")["providers"]
    ]
    assert rows == [
        ("p1", 100, 0, "closed", None),
        ("p2", 100, 0, "closed", None),
        ("p3", 98, -2, "closed", None),
    ]
    assert chain(snap, "testnet")["consensus_head"] == 100
    text = json.dumps(snap)
    for secret in ("secret", "AbCdEf0123456789", "invalid", "url"):
        assert secret not in text  # p3's URL has a password and a key in its path


async def test_a_failover_a_routing_decision_an_open_breaker_and_latency(
    app: LassoASGI, fleet: FakeFleet
) -> None:
    fleet.nodes["p1"].fault = Fault.REFUSED
    balance = call("eth_getBalance", ["0x" + "11" * 20, "latest"])
    assert "result" in await rpc(app, "/rpc/priority/testnet", balance)
    snap = await snapshot(app)
    testnet = chain(snap, "testnet")
    (decision,) = testnet["calls"]
    assert decision["method"] == "eth_getBalance"
    assert (decision["strategy"], decision["provider"], decision["transport"]) == (
        "priority",
        "p2",
        "http",
    )
    assert decision["result"] == "ok" and decision["client_transport"] == "http"
    (failover,) = testnet["failovers"]
    assert failover["failed"] == [
        {"provider": "p1", "transport": "http", "category": "provider_failure"}
    ]
    assert failover["provider"] == "p2"
    (lat,) = provider(snap, "testnet", "p2")["methods"]
    assert (lat["method"], lat["transport"], lat["samples"]) == ("eth_getBalance", "http", 1)
    assert lat["p50_ms"] is not None and lat["p99_ms"] is not None

    for n in range(2, 12):  # enough failures to open p1's breaker
        await rpc(app, "/rpc/priority/testnet", call("eth_getBalance", ["0x" + "11" * 20, hex(n)]))
    snap = await snapshot(app)
    assert provider(snap, "testnet", "p1")["http"]["circuit"] == "open"
    assert len(chain(snap, "testnet")["calls"]) == 11
    assert chain(snap, "team/teamnet")["calls"] == []


async def test_a_call_lasso_answers_itself_has_no_provider(app: LassoASGI) -> None:
    await rpc(app, "/rpc/testnet", call("eth_chainId", []))
    (decision,) = chain(await snapshot(app), "testnet")["calls"]
    assert (decision["method"], decision["provider"], decision["strategy"]) == (
        "eth_chainId",
        "",
        "",
    )


async def test_latency_rows_are_the_most_sampled_methods_only(app: LassoASGI) -> None:
    from lasso.core.latency import LatencyKey
    from lasso.dashboard.snapshot import MAX_METHODS

    book = app.gateway.profiles["default"]["testnet"].latency
    for i in range(MAX_METHODS + 5):
        for _ in range(i + 1):
            book.record_success(LatencyKey("p1", f"m{i:02d}", "http"), 0.0, 1000 * (i + 1))
    p1 = provider(await snapshot(app), "testnet", "p1")
    assert len(p1["methods"]) == MAX_METHODS and p1["methods_hidden"] == 5
    top = p1["methods"][0]
    assert (top["method"], top["samples"], top["p50_ms"], top["p99_ms"]) == ("m16", 17, 17.0, 17.0)


async def test_operator_events_newest_first_without_a_client_key(app: LassoASGI) -> None:
    events = app.gateway.events
    events.publish(
        BreakerChanged(
            **now_stamps(),
            chain="testnet",
            provider="p1",
            transport="http",
            old="closed",
            new="open",
        )
    )
    events.publish(
        Failover(
            **now_stamps(), chain="testnet", provider="p1", method="eth_call", to_provider="p2"
        )
    )
    events.publish(ClientLimited(**now_stamps(), client="key-LEAKME", limit="rate"))
    routine = {"transport": "http", "old": "open", "new": "half_open", "recovery_probe": True}
    events.publish(BreakerChanged(**now_stamps(), chain="testnet", provider="p1", **routine))
    snap = await snapshot(app)
    assert [e["kind"] for e in snap["events"]] == ["client_limited", "failover", "breaker"]
    assert snap["events"][2]["detail"] == {
        "transport": "http",
        "old": "closed",
        "new": "open",
        "reason": "",
        "recovery_probe": False,
    }
    assert snap["events"][1]["provider"] == "p1"
    assert "LEAKME" not in json.dumps(snap)


async def test_subscription_counts_per_chain(app: LassoASGI) -> None:
    class Hub:
        def statistics(self) -> HubStatistics:
            return HubStatistics(
                upstream={("testnet", "p1", "newHeads"): 1, ("team/teamnet", "t1", "logs"): 2},
                clients={("testnet", "newHeads"): 3, ("team/teamnet", "logs"): 4},
                failovers=5,
            )

    board = Dashboard(app.gateway, Hub())  # type: ignore[arg-type]
    snap = board.snapshot()
    assert chain(snap, "testnet")["subscriptions"] == {
        "clients": {"newHeads": 3},
        "upstream": [{"provider": "p1", "kind": "newHeads", "count": 1}],
    }
    assert chain(snap, "team/teamnet")["subscriptions"]["clients"] == {"logs": 4}
    assert snap["subscription_failovers"] == 5


def _outcome(state: ReloadState, settings: Settings, at: float) -> ReloadOutcome:
    from lasso.config.diff import diff_settings

    return ReloadOutcome(
        decision="apply",
        at=Stamp("2026-12-05T08:00:00.000+00:00", at),
        source="lasso.toml",
        generation=state.generation + 1,
        to_apply=settings,
        diff=diff_settings(settings, settings),
    )


async def test_the_reload_history_newest_first(app: LassoASGI) -> None:
    settings = app.gateway.settings
    state = ReloadState(settings, source="lasso.toml")
    state.applied(_outcome(state, settings, 1.0))
    rejected = ReloadOutcome(
        decision="rejected",
        at=Stamp("2026-12-05T08:01:00.000+00:00", 2.0),
        source="lasso.toml",
        generation=2,
        problems=(ConfigProblem(path="chains.x.providers", message="https://h/v3/LEAKME bad"),),
    )
    state.record(rejected, "rejected", problems=rejected.problems)
    state.applied(_outcome(state, settings, 3.0))
    snap = Dashboard(app.gateway, None, state).snapshot()
    config = snap["config"]
    assert config["generation"] == 3
    assert [(r["generation"], r["outcome"], r["problems"]) for r in config["history"]] == [
        (3, "applied", []),
        (2, "rejected", ["chains.x.providers"]),
        (2, "applied", []),
    ]
    assert "LEAKME" not in json.dumps(snap)  # a problem's message may quote a URL


async def test_the_snapshot_is_built_once_per_half_interval_for_every_reader(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    board = Dashboard(app.gateway, interval_s=1.0)
    first = board.snapshots.get()
    assert board.snapshots.get() is first and board.snapshots.builds == 1
    await trio.sleep(0.5)
    assert board.snapshots.get() is not first and board.snapshots.builds == 2
