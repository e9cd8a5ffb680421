"""/health shows each provider's height, lag, fork state and liveness, and the chain's
consensus head and block time."""

from __future__ import annotations

import trio
import trio.testing

from lasso.web.asgi import LassoASGI
from tests.support.asgi import asgi_request


async def test_health_shows_the_chain_state(
    app: LassoASGI, autojump_clock: trio.testing.MockClock
) -> None:
    chain = app.gateway.profiles["default"]["testnet"]  # head_poll_ms = 0: fed by hand
    report = (await asgi_request(app, "GET", "/health")).json()["chains"]["testnet"]
    assert (report["consensus_head"], report["block_time_ms"]) == (None, 1000.0)
    assert report["block_time_measured"] is False
    p1 = report["providers"][0]
    assert (p1["height"], p1["lag"], p1["forked"], p1["live"]) == (None, None, None, None)

    now = trio.current_time()
    for pid in ("p1", "p2", "p3"):
        chain.observe_head(pid, 100, "0xa100", "0xa099", now)
    await trio.sleep(2)
    now = trio.current_time()
    chain.observe_head("p1", 101, "0xa101", "0xa100", now)
    chain.observe_head("p2", 101, "0xa101", "0xa100", now)
    chain.observe_head("p3", 101, "0xb101", "0xa100", now)  # another branch at 101

    report = (await asgi_request(app, "GET", "/health")).json()["chains"]["testnet"]
    assert report["consensus_head"] == 101
    assert (report["block_time_ms"], report["block_time_measured"]) == (2000.0, True)
    rows = {p["id"]: (p["height"], p["lag"], p["forked"], p["live"]) for p in report["providers"]}
    assert rows == {
        "p1": (101, 0, False, True),
        "p2": (101, 0, False, True),
        "p3": (101, 0, True, True),
    }

    await trio.sleep(10)
    chain.observe_head("p1", 105, "0xa105", "0xa104", trio.current_time())
    chain.observe_head("p2", 105, "0xa105", "0xa104", trio.current_time())
    await trio.sleep(25)  # p3's last report is 35 s old: no longer live
    report = (await asgi_request(app, "GET", "/health")).json()["chains"]["testnet"]
    rows = {p["id"]: (p["height"], p["lag"], p["live"]) for p in report["providers"]}
    assert rows == {"p1": (105, 0, True), "p2": (105, 0, True), "p3": (101, -4, False)}


async def test_health_shows_the_served_head_floor(app: LassoASGI) -> None:
    chain = app.gateway.profiles["default"]["testnet"]
    report = (await asgi_request(app, "GET", "/health")).json()["chains"]["testnet"]
    assert report["served_head"] is None
    chain.floor.raise_to(42)  # what an answered eth_blockNumber or a sent newHeads does
    report = (await asgi_request(app, "GET", "/health")).json()["chains"]["testnet"]
    assert report["served_head"] == 42
