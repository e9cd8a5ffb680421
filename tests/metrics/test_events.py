"""Operator events published on ``gateway.events`` increment the right counters.

The events are published here by hand (the core publishes them once the logs work
lands); what is tested is the metrics' side: which counter, which labels, and that
no label value comes from anything but the configuration.
"""

from __future__ import annotations

from lasso.metrics import Metrics
from lasso.opsevents import (
    BreakerChanged,
    ClientLimited,
    Failover,
    ProviderDown,
    ProviderUp,
    Quarantined,
    Reloaded,
    UpstreamRateLimited,
    now_stamps,
)
from lasso.web.asgi import LassoASGI
from tests.metrics.scrape import Scrape, parse
from tests.support.asgi import asgi_request


async def scrape(app: LassoASGI) -> Scrape:
    return parse((await asgi_request(app, "GET", "/metrics")).body)


async def test_breaker_transitions_by_channel_and_state_entered(app: LassoASGI) -> None:
    publish = app.gateway.events.publish
    where = {"profile": "default", "chain": "testnet", "provider": "p2"}
    publish(BreakerChanged(**now_stamps(), **where, transport="http", old="closed", new="open"))
    publish(BreakerChanged(**now_stamps(), **where, transport="http", old="open", new="half_open"))
    publish(BreakerChanged(**now_stamps(), **where, transport="http", old="half_open", new="open"))
    metrics = await scrape(app)
    name = "lasso_breaker_transitions_total"
    labels = {"chain": "testnet", "provider": "p2", "transport": "http"}
    assert metrics.value(name, **labels, state="open") == 2
    assert metrics.value(name, **labels, state="half_open") == 1


async def test_failovers_rate_limits_quarantines_and_provider_changes(app: LassoASGI) -> None:
    publish = app.gateway.events.publish
    team = {"profile": "team", "chain": "teamnet", "provider": "t1"}
    publish(Failover(**now_stamps(), **team, method="eth_call", to_provider="t1"))
    publish(UpstreamRateLimited(**now_stamps(), **team, transport="http", retry_after_ms=500))
    publish(UpstreamRateLimited(**now_stamps(), **team, transport="http"))
    publish(Quarantined(**now_stamps(), profile="team", chain="teamnet", method="x", seconds=5))
    publish(ProviderDown(**now_stamps(), **team, transport="ws", reason="closed"))
    publish(ProviderUp(**now_stamps(), **team, transport="ws"))
    metrics = await scrape(app)
    assert metrics.value("lasso_failovers_total", chain="team/teamnet", provider="t1") == 1
    limited = "lasso_upstream_rate_limited_total"
    assert metrics.value(limited, chain="team/teamnet", provider="t1", transport="http") == 2
    assert metrics.value("lasso_quarantines_total", chain="team/teamnet") == 1
    changes = "lasso_provider_changes_total"
    ws = {"chain": "team/teamnet", "provider": "t1", "transport": "ws"}
    assert metrics.value(changes, **ws, state="down") == 1
    assert metrics.value(changes, **ws, state="up") == 1


async def test_reloads_by_result(app: LassoASGI) -> None:
    for generation, result in [(2, "applied"), (2, "rejected"), (2, "rejected"), (3, "applied")]:
        app.gateway.events.publish(Reloaded(**now_stamps(), generation=generation, result=result))
    metrics = await scrape(app)
    assert metrics.value("lasso_reloads_total", result="applied") == 2
    assert metrics.value("lasso_reloads_total", result="rejected") == 2


async def test_inbound_limits_from_events_and_from_calls_never_name_the_client(
    app: LassoASGI,
) -> None:
    secret_client = "203.0.113.7|api-key-s3cr3t"
    for limit in ("rate", "rate", "connections"):
        app.gateway.events.publish(ClientLimited(**now_stamps(), client=secret_client, limit=limit))
    metrics = await scrape(app)
    assert metrics.value("lasso_inbound_limited_total", limit="rate") == 2
    assert metrics.value("lasso_inbound_limited_total", limit="connections") == 1
    assert "s3cr3t" not in metrics.text and "203.0.113.7" not in metrics.text


async def test_inbound_limited_can_be_counted_by_a_call(app: LassoASGI) -> None:
    metrics = Metrics(app.gateway)
    try:
        metrics.inbound_limited("ws")
        metrics.inbound_limited("rate", 3)
        metrics.inbound_limited('no"such\nlimit')  # not a word: folded
        scraped = parse(metrics.render())
    finally:
        metrics.close()
    assert scraped.value("lasso_inbound_limited_total", limit="ws") == 1
    assert scraped.value("lasso_inbound_limited_total", limit="rate") == 3
    assert scraped.value("lasso_inbound_limited_total", limit="other") == 1


async def test_names_the_configuration_does_not_have_are_counted_as_other(
    app: LassoASGI,
) -> None:
    publish = app.gateway.events.publish
    unknown_chain = {"profile": "default", "chain": "no-such-chain", "provider": "p1"}
    unknown_provider = {"profile": "default", "chain": "testnet", "provider": "gone"}
    publish(Failover(**now_stamps(), **unknown_chain, method="eth_call", to_provider="p2"))
    publish(Failover(**now_stamps(), **unknown_provider, method="eth_call", to_provider="p2"))
    publish(
        BreakerChanged(
            **now_stamps(), **unknown_provider, transport="carrier-pigeon", old="x", new="weird"
        )
    )
    metrics = await scrape(app)
    assert metrics.value("lasso_failovers_total", chain="other", provider="other") == 1
    assert metrics.value("lasso_failovers_total", chain="testnet", provider="other") == 1
    transitions = metrics.samples("lasso_breaker_transitions_total")
    assert [labels for labels, _ in transitions] == [
        {"chain": "testnet", "provider": "other", "transport": "other", "state": "other"}
    ]
    assert "no-such-chain" not in metrics.text and "pigeon" not in metrics.text
