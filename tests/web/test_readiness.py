"""``GET /health/ready`` (and ``/health?ready``): readiness a load balancer can use.

In-process on fake nodes, virtual time: the breakers open from real failed calls,
the prober closes one again when its node heals. ``/health`` (liveness) stays 200.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from lasso.chaos.faults import Fault
from lasso.config import ProviderConfig, parse_settings
from lasso.core.breaker import CircuitState
from lasso.daemon import open_gateway
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.support.asgi import asgi_request
from tests.support.fake_ws import open_fake_ws_nodes, wait_ws_connected
from tests.support.fakes import FakeHttpTransport, FakeNode

CALL = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


async def ready(app: LassoASGI, path: str = "/health/ready") -> tuple[int | None, Any]:
    path, _, query = path.partition("?")
    response = await asgi_request(app, "GET", path, query=query)
    return response.status, response.json()


def http_circuits(app: LassoASGI) -> set[CircuitState]:
    chain = app.gateway.profiles["default"]["testnet"]
    now = trio.current_time()
    return {p.channel("http").breaker.state(now) for p in chain.providers.values()}


async def test_ready_when_every_chain_can_serve(app: LassoASGI) -> None:
    for path in ("/health/ready", "/health?ready", "/api/health/ready"):
        status, body = await ready(app, path)
        assert (status, body) == (200, {"status": "ready", "chains": 2}), path


async def test_all_breakers_open_is_503_naming_the_chain_then_one_recovers(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    for pid in ("p1", "p2", "p3"):
        fleet.nodes[pid].fault = Fault.REFUSED
    with trio.fail_after(60):  # virtual seconds: a handful of calls trips every breaker
        while http_circuits(app) != {CircuitState.OPEN}:
            await asgi_request(app, "POST", "/rpc/testnet", CALL)

    # liveness is unchanged: 200, cheap, whatever the providers do
    assert (await asgi_request(app, "GET", "/health")).status == 200
    for path in ("/health/ready", "/health?ready"):
        status, body = await ready(app, path)
        assert status == 503, path
        assert body["status"] == "not_ready"
        (chain,) = body["unavailable"]  # teamnet, in profile team, still serves
        assert (chain["profile"], chain["chain"]) == ("default", "testnet")
        assert sorted(chain["providers"]) == ["p1", "p2", "p3"]
        for reasons in chain["providers"].values():
            (reason,) = reasons
            assert reason.startswith("http: breaker open (probe in "), reason
    response = await asgi_request(app, "GET", "/health/ready")
    assert response.headers["cache-control"] == "no-store"

    fleet.nodes["p2"].fault = None  # p2 heals; its prober closes its breaker
    with trio.fail_after(600):
        while (await ready(app))[0] != 200:  # noqa: ASYNC110  # the prober has no event to wait on
            await trio.sleep(1)
    assert await ready(app) == (200, {"status": "ready", "chains": 2})


async def test_a_profile_chain_that_cannot_serve_is_named(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    chain = app.gateway.profiles["team"]["teamnet"]
    chain.providers["t1"].channel("http").breaker.force_open(trio.current_time(), 30_000)
    status, body = await ready(app)
    assert status == 503
    assert [(c["profile"], c["chain"]) for c in body["unavailable"]] == [("team", "teamnet")]


WS_SETTINGS = """
[chains.testnet]
chain_id = 31337
head_poll_ms = 0
providers = [ { id = "p1", url = "http://p1.invalid", ws_url = "ws://p1.invalid" } ]
"""


@pytest.fixture
async def ws_app() -> AsyncIterator[tuple[LassoASGI, Any]]:
    """One provider with HTTP and a WebSocket, both fake."""
    nodes = {"p1": FakeNode()}
    async with open_fake_ws_nodes(nodes) as (fakes, connect):

        def http(chain: str, provider: ProviderConfig) -> FakeHttpTransport:
            return FakeHttpTransport(nodes[provider.id], provider.id)

        settings = parse_settings(WS_SETTINGS, env={})
        async with open_gateway(
            settings, rng=random.Random(5), transports=http, connector=connect
        ) as gateway:
            await wait_ws_connected(gateway.profiles["default"]["testnet"].providers.values())
            yield LassoASGI(gateway, create_app(gateway)), fakes["p1"]


async def test_a_websocket_stuck_reconnecting_is_not_available(
    ws_app: tuple[LassoASGI, Any], autojump_clock: trio.testing.MockClock
) -> None:
    app, fake_ws = ws_app
    provider = app.gateway.profiles["default"]["testnet"].providers["p1"]
    assert provider.ws is not None
    provider.channel("http").breaker.force_open(trio.current_time(), 120_000)
    # the WebSocket alone still serves: connected, its breaker closed
    assert (await ready(app))[0] == 200

    fake_ws.refuse = True  # every reconnect is refused: stuck reconnecting
    fake_ws.drop()
    with trio.fail_after(5):
        while provider.ws.connected:  # noqa: ASYNC110  # no event for a lost link
            await trio.sleep(0.01)
    # its breaker is still closed: only the connection tells it cannot serve
    assert provider.channel("ws").breaker.state(trio.current_time()) is CircuitState.CLOSED
    status, body = await ready(app)
    assert status == 503
    reasons = body["unavailable"][0]["providers"]["p1"]
    assert reasons[0].startswith("http: breaker open")
    assert reasons[1].startswith("ws: not connected (")

    fake_ws.refuse = False  # it reconnects: available again over WS
    with trio.fail_after(120):
        await provider.ws.wait_connected()
    assert (await ready(app))[0] == 200
