"""The cache as the front end shows it (in-process ASGI, fake nodes): the x-lasso-cache
header, Cache-Control: no-cache, routing metadata and /metrics."""

from __future__ import annotations

import base64
import json

import trio
import trio.testing

from lasso.gateway import Gateway
from lasso.web.asgi import LassoASGI
from tests.conftest import FakeFleet
from tests.metrics.scrape import parse
from tests.support.asgi import AsgiResponse, asgi_request

BLOCK_16 = ["0x10", False]


def rpc(method: str, params: list[object], rid: object = 1) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


async def post(app: LassoASGI, body: object, *headers: tuple[str, str]) -> AsgiResponse:
    data = json.dumps(body).encode()
    return await asgi_request(app, "POST", "/rpc/testnet", data, headers=headers)


def report_head(gateway: Gateway, number: int) -> None:
    chain = gateway.profiles["default"]["testnet"]
    chain.observe_head("p1", number, f"0x{number:064x}", None, trio.current_time())


async def test_the_header_says_miss_then_hit_and_no_cache_bypasses(
    app: LassoASGI, gateway: Gateway, fleet: FakeFleet, autojump_clock: trio.testing.MockClock
) -> None:
    report_head(gateway, 100)
    first = await post(app, rpc("eth_getBlockByNumber", BLOCK_16))
    second = await post(app, rpc("eth_getBlockByNumber", BLOCK_16))
    bypass = await post(app, rpc("eth_getBlockByNumber", BLOCK_16), ("Cache-Control", "no-cache"))
    assert [r.headers.get("x-lasso-cache") for r in (first, second, bypass)] == [
        "miss",
        "hit",
        "bypass",
    ]
    assert first.body == second.body == bypass.body
    assert fleet.nodes["p1"].calls.count("eth_getBlockByNumber") == 2
    # an uncacheable method has no header
    sent = await post(app, rpc("eth_sendRawTransaction", ["0x00"]))
    assert "x-lasso-cache" not in sent.headers


async def test_batches_and_routing_metadata(
    app: LassoASGI, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    report_head(gateway, 100)
    await post(app, rpc("eth_getBlockByNumber", BLOCK_16))
    hits = await post(app, [rpc("eth_getBlockByNumber", BLOCK_16, rid=n) for n in range(3)])
    assert hits.headers["x-lasso-cache"] == "hit"
    assert [a["id"] for a in json.loads(hits.body)] == [0, 1, 2]
    mixed = await post(
        app,
        [rpc("eth_getBlockByNumber", BLOCK_16), rpc("eth_getBlockByNumber", ["0x11", False])],
    )
    assert mixed.headers["x-lasso-cache"] == "miss"
    meta = await post(
        app, rpc("eth_getBlockByNumber", BLOCK_16), ("x-lasso-include-meta", "headers")
    )
    encoded = meta.headers["x-lasso-meta"]
    decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert json.loads(decoded)["cache"] == "hit"


async def test_metrics_count_hits_misses_and_bytes(
    app: LassoASGI, gateway: Gateway, autojump_clock: trio.testing.MockClock
) -> None:
    report_head(gateway, 100)
    for _ in range(3):
        await post(app, rpc("eth_getBlockByNumber", BLOCK_16))
    scraped = parse((await asgi_request(app, "GET", "/metrics")).body)
    labels = {"chain": "testnet", "method": "eth_getBlockByNumber"}
    assert scraped.value("lasso_cache_hits_total", **labels) == 2
    assert scraped.value("lasso_cache_misses_total", **labels) == 1
    assert scraped.value("lasso_cache_entries", **labels) == 1
    assert scraped.value("lasso_cache_bytes", **labels) > 0
