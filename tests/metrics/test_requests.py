"""Per-call metrics from real calls through the gateway (fake nodes, in-process ASGI)."""

from __future__ import annotations

import json

import trio
import trio.testing

from lasso.callmeta import CallMeta
from lasso.chaos.faults import Fault
from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.metrics import Metrics
from lasso.metrics.labels import KNOWN_METHODS, OTHER
from lasso.metrics.requests import RequestMetrics
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.metrics.scrape import Scrape, parse
from tests.support.asgi import asgi_request

HOSTILE_METHOD = 'we"ird\\method\nname'


def rpc(method: str, params: object = (), rid: object = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})


async def call(app: LassoASGI, path: str, body: str | bytes) -> None:
    data = body.encode() if isinstance(body, str) else body
    response = await asgi_request(app, "POST", path, data)
    assert response.status == 200, response.body


async def scrape(app: LassoASGI) -> Scrape:
    response = await asgi_request(app, "GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.body)


async def test_the_request_counter_counts_every_call_once(app: LassoASGI) -> None:
    for _ in range(5):
        await call(app, "/rpc/priority/testnet", rpc("eth_blockNumber"))
    await call(app, "/rpc/round-robin/testnet", rpc("eth_chainId"))  # answered locally
    batch = [json.loads(rpc("eth_gasPrice", rid=n)) for n in range(3)]
    await call(app, "/rpc/testnet", json.dumps(batch))
    await call(app, "/rpc/profile/team/teamnet", rpc("eth_blockNumber"))
    metrics = await scrape(app)
    assert metrics.total("lasso_requests_total") == 10
    assert metrics.total("lasso_request_duration_seconds_count") == 10
    served = metrics.value(
        "lasso_requests_total",
        chain="testnet",
        method="eth_blockNumber",
        strategy="priority",
        provider="p1",
        transport="http",
        client_transport="http",
        result="ok",
        code="none",
    )
    assert served == 5
    local = metrics.samples("lasso_requests_total", method="eth_chainId")
    assert [labels["provider"] for labels, _ in local] == ["none"]
    assert metrics.total("lasso_requests_total", method="eth_gasPrice") == 3
    assert metrics.total("lasso_requests_total", chain="team/teamnet") == 1
    upstream = metrics.total(
        "lasso_upstream_duration_seconds_count", chain="testnet", method="eth_blockNumber"
    )
    assert upstream == 5
    assert metrics.total("lasso_inflight_requests") == 0


async def test_an_unknown_method_folds_into_other_and_never_reaches_the_text(
    app: LassoASGI,
) -> None:
    await call(app, "/rpc/testnet", rpc(HOSTILE_METHOD))
    await call(app, "/rpc/testnet", rpc("vendor_madeUp"))
    metrics = await scrape(app)
    methods = metrics.label_values("lasso_requests_total", "method")
    assert methods == {OTHER}
    node_errors = metrics.samples("lasso_requests_total", method=OTHER, result="node_error")
    assert [(labels["code"], value) for labels, value in node_errors] == [("-32601", 2.0)]
    assert "weird" not in metrics.text.replace('"', "").replace("\\", "")
    assert "madeUp" not in metrics.text


async def test_a_failed_attempt_is_counted_for_its_provider(
    app: LassoASGI, fleet: FakeFleet
) -> None:
    fleet.nodes["p1"].fault = Fault.HTML_500
    params = ["0x0000000000000000000000000000000000000001", "latest"]
    await call(app, "/rpc/priority/testnet", rpc("eth_getBalance", params))
    metrics = await scrape(app)
    failed = metrics.samples("lasso_upstream_failed_attempts_total", chain="testnet")
    assert [(labels["provider"], labels["transport"], v) for labels, v in failed] == [
        ("p1", "http", 1.0)
    ]
    assert metrics.total("lasso_requests_total", provider="p2", strategy="priority") == 1


async def test_breaker_state_and_opens_come_from_the_channels(app: LassoASGI) -> None:
    chain = app.gateway.profiles["default"]["testnet"]
    chain.providers["p2"].channel("http").breaker.force_open(trio.current_time(), 60_000)
    metrics = await scrape(app)
    state = "lasso_circuit_state"
    assert metrics.value(state, chain="testnet", provider="p1", transport="http") == 0
    assert metrics.value(state, chain="testnet", provider="p2", transport="http") == 2
    assert metrics.value(state, chain="team/teamnet", provider="t1", transport="http") == 0
    opens = "lasso_breaker_opens_total"
    assert metrics.value(opens, chain="testnet", provider="p2", transport="http") == 1
    available = "lasso_provider_available"
    assert metrics.value(available, chain="testnet", provider="p2") == 0
    assert metrics.value(available, chain="testnet", provider="p1") == 1


async def test_in_flight_calls_are_counted_while_they_run(
    app: LassoASGI, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    await call(app, "/rpc/testnet", rpc("eth_blockNumber"))  # the fleet's nodes now exist
    fleet.nodes["p1"].delay_s = 1.5  # within eth_gasPrice's 2 s deadline
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, app, "/rpc/priority/testnet", rpc("eth_gasPrice"))
        nursery.start_soon(call, app, "/rpc/priority/testnet", rpc("eth_gasPrice"))
        await trio.testing.wait_all_tasks_blocked()
        assert (await scrape(app)).value("lasso_inflight_requests") == 2
    metrics = await scrape(app)
    assert metrics.value("lasso_inflight_requests") == 0
    slow = metrics.samples("lasso_request_duration_seconds_bucket", method="eth_gasPrice")
    assert {labels["le"]: v for labels, v in slow}["1.0"] == 0  # each took 1.5 s
    assert {labels["le"]: v for labels, v in slow}["2.5"] == 2


async def test_process_and_platform_collectors_are_on_the_gateways_registry(
    app: LassoASGI,
) -> None:
    metrics = await scrape(app)
    assert metrics.value("process_resident_memory_bytes") > 0
    assert "process_cpu_seconds" in metrics.families
    assert "python_info" in metrics.families
    assert metrics.value("lasso_config_generation") == 1
    assert metrics.value("lasso_uptime_seconds") > 0


async def test_each_gateway_has_its_own_registry(app: LassoASGI, fleet: FakeFleet) -> None:
    settings = parse_settings(SETTINGS, env={})
    async with open_gateway(settings, transports=FakeFleet().transport) as other:
        other_app = LassoASGI(other, create_app(other))
        await call(app, "/rpc/testnet", rpc("eth_blockNumber"))
        assert (await scrape(other_app)).total("lasso_requests_total") == 0
        assert (await scrape(app)).total("lasso_requests_total") == 1


async def test_metrics_can_be_turned_off(fleet: FakeFleet) -> None:
    settings = parse_settings(SETTINGS + "\n[metrics]\nenabled = false\n", env={})
    async with open_gateway(settings, transports=fleet.transport) as gateway:
        app = LassoASGI(gateway, create_app(gateway))
        response = await asgi_request(app, "GET", "/metrics")
        assert response.status == 404
        assert response.json()["error"]["code"] == -32600
        observers = gateway.events.request_observers  # the dashboard's recorder stays
        assert not [
            o for o in observers if isinstance(getattr(o, "__self__", None), RequestMetrics)
        ]


async def test_configured_buckets_and_extra_methods(fleet: FakeFleet) -> None:
    extra = '\n[metrics]\nlatency_buckets_ms = [50, 5]\nextra_methods = ["vendor_madeUp"]\n'
    settings = parse_settings(SETTINGS + extra, env={})
    async with open_gateway(settings, transports=fleet.transport) as gateway:
        app = LassoASGI(gateway, create_app(gateway))
        await call(app, "/rpc/testnet", rpc("vendor_madeUp"))
        metrics = await scrape(app)
    assert metrics.label_values("lasso_requests_total", "method") == {"vendor_madeUp"}
    buckets = metrics.label_values("lasso_request_duration_seconds_bucket", "le")
    assert buckets == {"0.005", "0.05", "+Inf"}  # sorted for the operator


async def test_ten_thousand_unknown_methods_make_one_label_value_and_one_cache_entry(
    app: LassoASGI,
) -> None:
    metrics = Metrics(app.gateway)
    try:
        for n in range(10_000):
            meta = CallMeta("testnet", f"made_up_{n}", 0.0, profile="default")
            meta.result, meta.code = "node_error", -32601
            meta.finish()
            metrics.requests.observe(meta)
        scraped = parse(metrics.render())
        assert scraped.label_values("lasso_requests_total", "method") == {OTHER}
        assert scraped.total("lasso_requests_total") == 10_000
        assert len(metrics.requests.cache) == 1
    finally:
        metrics.close()
    assert metrics.requests.observe not in app.gateway.events.request_observers


def test_every_known_method_is_a_plain_name() -> None:
    assert all(m.replace("_", "").isalnum() for m in KNOWN_METHODS)
    assert "eth_call" in KNOWN_METHODS and "eth_subscribe" in KNOWN_METHODS
