"""Through the HTTP front end: a provider removed while a request to it is in flight
still answers it; and /health renders each channel's statistics."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from lasso.metrics import Metrics
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.support.asgi import AsgiResponse, asgi_request

BODY = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []}).encode()


@pytest.mark.parametrize("path", ["/rpc/priority/testnet", "/rpc/provider/p1/testnet"])
async def test_a_request_in_flight_to_a_removed_provider_is_answered(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock, path: str
) -> None:
    chain = app.gateway.profiles["default"]["testnet"]
    fleet.nodes["p1"].delay_s = 0.2
    responses: list[AsgiResponse] = []

    async def client() -> None:
        responses.append(await asgi_request(app, "POST", path, BODY))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        await trio.testing.wait_all_tasks_blocked()  # the attempt waits on p1's answer
        assert fleet.nodes["p1"].calls == ["eth_blockNumber"]
        del chain.providers["p1"]  # what a reload removing it does, mid-request
    (response,) = responses
    assert (response.status, response.body) == (200, b'{"jsonrpc":"2.0","id":7,"result":"0x64"}')
    assert all(node.calls == [] for pid, node in fleet.nodes.items() if pid != "p1")


async def test_health_renders_channel_statistics(app: LassoASGI) -> None:
    chain = app.gateway.profiles["default"]["testnet"]
    tracker = chain.providers["p2"].channel("http").restarts  # its supervisor counts here
    for _ in range(6):  # more than 5 restarts in 60 s: quarantined
        tracker.record_restart(trio.current_time())
    report = (await asgi_request(app, "GET", "/health")).json()
    testnet = report["chains"]["testnet"]
    assert (testnet["status"], testnet["available_providers"]) == ("degraded", 2)
    p1, p2, _ = testnet["providers"]
    assert (p1["http"]["tier"], p1["http"]["quarantined"], p1["http"]["circuit"]) == (
        "healthy",
        False,
        "closed",
    )
    assert (p2["http"]["tier"], p2["http"]["quarantined"], p2["http"]["circuit"]) == (
        "open",
        True,
        "closed",
    )
    assert p1["http"]["breaker"]["state"] == "closed" and p1["http"]["rate_limited"] is False
    assert "requests" in p1["http"]["transport"]
    assert p1["ws"] is None  # no ws_url configured
    assert p1["supervisor"]["name"] == "default/testnet/p1"


async def test_metrics_render_each_channels_circuit(app: LassoASGI) -> None:
    chain = app.gateway.profiles["default"]["testnet"]
    chain.providers["p2"].channel("http").breaker.force_open(trio.current_time(), 60_000)
    text = Metrics(app.gateway).render().decode()
    assert 'lasso_circuit_state{chain="testnet",provider="p1",transport="http"} 0' in text
    assert 'lasso_circuit_state{chain="testnet",provider="p2",transport="http"} 2' in text
    assert 'lasso_circuit_state{chain="team/teamnet",provider="t1",transport="http"} 0' in text
