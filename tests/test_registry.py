"""The registry applies a reload's diff to the running gateway: providers added and
removed one at a time (each under its own cancel scope, a removed one draining),
chains and profiles added and removed, thresholds changed without resetting state,
and /health shows the config's generation and the last reload (through the front end)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from lasso.config import parse_settings
from lasso.core.breaker import FailureKind
from lasso.daemon import _retune_front, front_limits, hypercorn_config, open_gateway
from lasso.gateway import Gateway
from lasso.registry import Registry
from lasso.reload import ReloadState, reload_once
from lasso.subscriptions.hub import SubscriptionHub, open_subscription_hub
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.support.asgi import AsgiResponse, asgi_request

BODY = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []}).encode()
P1 = '  { id = "p1", url = "http://p1.invalid", priority = 1 },\n'
WITHOUT_P1 = SETTINGS.replace(P1, "")
NEW_CHAIN = """
[chains.newnet]
chain_id = 7
providers = [ { id = "n1", url = "http://n1.invalid" } ]
"""
THRESHOLD = "[circuit_breaker]\nfailure_threshold = 2\n"


class Rig:
    def __init__(
        self, path: Path, gateway: Gateway, hub: SubscriptionHub, state: ReloadState
    ) -> None:
        self.path, self.gateway, self.hub, self.state = path, gateway, hub, state
        self.limits = front_limits(state.settings.server)
        self.front = hypercorn_config("127.0.0.1", 0, state.settings.server)
        retune = partial(_retune_front, self.limits, self.front)
        self.registry = Registry(gateway, hub, state, published=retune)
        self.app = LassoASGI(gateway, create_app(gateway, hub, state))

    async def reload(self, text: str) -> None:
        self.path.write_text(text)
        await reload_once(self.path, self.state, self.registry.apply)

    async def post(self, path: str = "/rpc/testnet") -> AsgiResponse:
        return await asgi_request(self.app, "POST", path, BODY)


@pytest.fixture
async def rig(tmp_path: Path, fleet: FakeFleet) -> AsyncIterator[Rig]:
    path = tmp_path / "lasso.toml"
    path.write_text(SETTINGS)
    settings = parse_settings(SETTINGS, env={})
    async with (
        open_gateway(settings, rng=random.Random(7), transports=fleet.transport) as gateway,
        open_subscription_hub(gateway) as hub,
    ):
        yield Rig(path, gateway, hub, ReloadState(settings, source=str(path)))


async def test_a_removed_provider_leaves_routing_at_once_and_stops_after_its_drain(
    rig: Rig, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    chain = rig.gateway.profiles["default"]["testnet"]
    p1, p2 = chain.providers["p1"], chain.providers["p2"]
    assert p1.supervisor.statistics().running
    await rig.reload(WITHOUT_P1)
    assert rig.state.generation == 2
    assert "p1" not in chain.providers
    fleet.nodes["p1"].calls.clear()
    assert (await rig.post("/rpc/priority/testnet")).status == 200
    assert fleet.nodes["p1"].calls == []  # out of routing at once
    await trio.testing.wait_all_tasks_blocked()
    assert p1.supervisor.statistics().running  # still draining
    grace_s = rig.gateway.settings.server.shutdown_grace_ms / 1000
    await trio.sleep(grace_s + 0.1)
    assert not p1.supervisor.statistics().running  # its own scope is cancelled...
    assert p2.supervisor.statistics().running  # ...and nobody else's


async def test_a_provider_removed_mid_request_answers_it(
    rig: Rig, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    fleet.nodes["p1"].delay_s = 0.5
    responses: list[AsgiResponse] = []

    async def client() -> None:
        responses.append(await rig.post("/rpc/provider/p1/testnet"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        await trio.testing.wait_all_tasks_blocked()  # the attempt waits on p1's answer
        await rig.reload(WITHOUT_P1)
    (response,) = responses
    assert (response.status, response.body) == (200, b'{"jsonrpc":"2.0","id":7,"result":"0x64"}')
    after = await rig.post("/rpc/provider/p1/testnet")
    assert after.json()["error"]["message"] == (
        "Provider 'p1' is not configured for chain 'testnet'"
    )


async def test_re_adding_a_provider_starts_it_and_routes_to_it(
    rig: Rig, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.reload(WITHOUT_P1)
    await rig.reload(SETTINGS)
    chain = rig.gateway.profiles["default"]["testnet"]
    assert rig.state.generation == 3
    assert chain.providers["p1"].supervisor.statistics().running
    fleet.nodes["p1"].calls.clear()
    assert (await rig.post("/rpc/priority/testnet")).status == 200
    assert fleet.nodes["p1"].calls == ["eth_blockNumber"]  # priority 1 again


async def test_unchanged_providers_keep_their_state_and_a_threshold_applies_without_reset(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    chain = rig.gateway.profiles["default"]["testnet"]
    p2 = chain.providers["p2"]
    for _ in range(3):
        assert (await rig.post("/rpc/provider/p2/testnet")).status == 200
    channel = p2.channel("http")
    now = trio.current_time()
    for _ in range(2):  # two failures: below the default threshold (5)
        channel.record_failure(now, channel.admit(now), FailureKind.SERVER)
    latency = channel.latency("eth_blockNumber")
    assert latency is not None and latency.samples == 3
    await rig.reload(WITHOUT_P1 + THRESHOLD)
    assert chain.providers["p2"] is p2 and p2.channel("http") is channel
    stats = channel.breaker.statistics(trio.current_time())
    assert (stats.state.value, stats.consecutive_failures) == ("closed", 2)  # kept
    assert channel.latency("eth_blockNumber") == latency
    now = trio.current_time()
    channel.record_failure(now, channel.admit(now), FailureKind.SERVER)
    assert channel.breaker.state(now).value == "open"  # 3 >= the new threshold 2


async def test_chains_and_profiles_are_added_and_removed(
    rig: Rig, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    old = rig.gateway.snapshot
    without_team = SETTINGS[: SETTINGS.index("[profiles.team")]
    await rig.reload(without_team + NEW_CHAIN)
    assert rig.state.generation == 2
    assert (await rig.post("/rpc/newnet")).json()["result"] == "0x64"
    gone = await rig.post("/rpc/profile/team/teamnet")
    assert gone.status == 404
    teamnet = old.profiles["team"]["teamnet"]
    assert teamnet.providers == {}  # drained
    assert "newnet" not in old.profiles["default"]  # the old snapshot is untouched


async def test_a_broken_file_keeps_the_last_known_good_and_health_shows_it(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    health = (await asgi_request(rig.app, "GET", "/health")).json()["config"]
    assert (health["generation"], health["last_reload"]) == (1, None)
    await rig.reload(SETTINGS.replace("max_batch = 5", "max_batch = -1\nmax_batchh = 3"))
    assert (await rig.post()).status == 200  # still serving
    assert rig.gateway.settings.server.max_batch == 5
    config = (await asgi_request(rig.app, "GET", "/health")).json()["config"]
    assert config["generation"] == 1
    assert config["source"] == str(rig.path)
    last = config["last_reload"]
    assert last["outcome"] == "rejected"
    assert {p["path"] for p in last["problems"]} == {"server.max_batch", "server.max_batchh"}
    await rig.reload(SETTINGS.replace("max_batch = 5", "max_batch = 6"))
    config = (await asgi_request(rig.app, "GET", "/health")).json()["config"]
    assert (config["generation"], config["last_reload"]["outcome"]) == (2, "applied")
    assert config["last_reload"]["summary"] == "1 live keys changed"
    assert rig.gateway.settings.server.max_batch == 6


async def test_a_restart_only_key_is_listed_not_applied(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    await rig.reload(SETTINGS.replace("[server]\n", "[server]\nport = 9999\n"))
    config = (await asgi_request(rig.app, "GET", "/health")).json()["config"]
    assert config["needs_restart"] == ["server.port"]
    assert rig.gateway.settings.server.port != 9999


async def test_the_front_ends_deadlines_apply_live(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    server = "[server]\nheader_timeout_ms = 1234\nws_send_timeout_ms = 2345\n"
    await rig.reload(SETTINGS.replace("[server]\n", server + "shutdown_grace_ms = 3456\n"))
    assert (rig.limits.header_timeout_s, rig.limits.send_timeout_s) == (1.234, 2.345)
    assert (rig.limits.grace_s, rig.front.graceful_timeout) == (3.456, 3.456)


async def test_a_chain_whose_chain_id_changed_is_replaced(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    old = rig.gateway.profiles["default"]["testnet"]
    p2 = old.providers["p2"]
    await rig.reload(SETTINGS.replace("chain_id = 31337", "chain_id = 31338"))
    new = rig.gateway.profiles["default"]["testnet"]
    assert new is not old and old.providers == {}  # the old one drains
    assert new.providers["p2"] is not p2  # nothing carries over to a different network
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    answer = await asgi_request(rig.app, "POST", "/rpc/testnet", body)
    assert answer.json()["result"] == hex(31338)
    assert new.providers["p2"].supervisor.statistics().running


async def test_subscription_budgets_are_resized_live(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    budget = rig.hub._budget("testnet")  # the chain's budget, as its first stream sizes it
    assert budget.max_live == 1_000
    bounds = "max_upstream_per_chain = 7\nmax_idle_upstream_per_chain = 3\n"
    await rig.reload(SETTINGS + "[subscriptions]\n" + bounds)
    assert (budget.max_live, budget.max_idle) == (7, 3)
