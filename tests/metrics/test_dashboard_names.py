"""Every metric the Grafana dashboard (``deploy/grafana-lasso.json``) queries exists in a real
scrape, and ``docs/metrics.md`` documents exactly the ``lasso_*`` families a scrape has."""

from __future__ import annotations

import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lasso.config import parse_settings
from lasso.daemon import open_gateway
from lasso.filters.service import open_filters
from lasso.metrics import Metrics
from lasso.opsevents import (
    BreakerChanged,
    ClientLimited,
    Failover,
    ProviderDown,
    Quarantined,
    Reloaded,
    UpstreamRateLimited,
    now_stamps,
)
from lasso.subscriptions.hub import open_subscription_hub
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from lasso.web.gate import Gate
from tests.conftest import SETTINGS, FakeFleet
from tests.metrics.scrape import Scrape, parse
from tests.support.asgi import asgi_request

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana-lasso.json"
DOCS = REPO / "docs" / "metrics.md"
NAME = re.compile(r"\b((?:lasso|process)_[a-z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "info": ("_info",),
}


def queries(node: Any) -> list[str]:
    """Every PromQL string in a dashboard: targets' ``expr``, variables' queries, annotations."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(value, str):
                found += queries(value)
            elif key in ("expr", "definition") or (key == "query" and "(" in value):
                found.append(value)
    elif isinstance(node, list):
        for item in node:
            found += queries(item)
    return found


def queried_names(dashboard: Any) -> set[str]:
    return {name for expr in queries(dashboard) for name in NAME.findall(expr)}


def exposed_names(scrape: Scrape) -> set[str]:
    """Sample names a query may use: each family's own, by type, and those it sent."""
    names = set()
    for family in scrape.families.values():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def missing(dashboard: Any, scrape: Scrape) -> set[str]:
    return queried_names(dashboard) - exposed_names(scrape)


@pytest.fixture
async def scrape() -> AsyncIterator[Scrape]:
    """A scrape of a gateway with its hub and filters, after calls and one of each event."""
    fleet = FakeFleet()
    settings = parse_settings(SETTINGS, env={})
    async with (
        open_gateway(settings, rng=random.Random(1), transports=fleet.transport) as gateway,
        open_subscription_hub(gateway) as hub,
        open_filters(gateway, hub),
    ):
        gate = Gate(gateway)  # as lasso.daemon.serve wires it: the gate's refusals counted
        metrics = Metrics(gateway, hub, gate)
        app = LassoASGI(gateway, create_app(gateway, hub, metrics=metrics), gate=gate)
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
        assert (await asgi_request(app, "POST", "/rpc/testnet", body)).status == 200
        where = {"profile": "default", "chain": "testnet", "provider": "p1"}
        for event in (
            BreakerChanged(**now_stamps(), **where, transport="http", old="closed", new="open"),
            ProviderDown(**now_stamps(), **where, transport="http"),
            Failover(**now_stamps(), **where, method="eth_call", to_provider="p2"),
            UpstreamRateLimited(**now_stamps(), **where, transport="http"),
            Quarantined(**now_stamps(), **where, method="eth_call", seconds=1),
            ClientLimited(**now_stamps(), client="127.0.0.1", limit="rate"),
            Reloaded(**now_stamps(), generation=2, result="applied"),
        ):
            gateway.events.publish(event)
        yield parse((await asgi_request(app, "GET", "/metrics")).body)


async def test_every_metric_the_dashboard_queries_exists(scrape: Scrape) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = queried_names(dashboard)
    assert len(names) > 30  # the parse found the queries
    assert missing(dashboard, scrape) == set()


async def test_a_dashboard_querying_a_missing_metric_is_caught(scrape: Scrape) -> None:
    planted = {"panels": [{"targets": [{"expr": "rate(lasso_requests_totl[5m])"}]}]}
    assert missing(planted, scrape) == {"lasso_requests_totl"}
    histogram = {"targets": [{"expr": "lasso_request_duration_seconds_bucket"}]}
    assert missing(histogram, scrape) == set()


def test_every_dashboard_panel_has_a_unique_id_and_a_title() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["title"] for panel in dashboard["panels"])


async def test_the_docs_list_exactly_the_lasso_families_a_scrape_has(scrape: Scrape) -> None:
    documented = set(re.findall(r"^\| `(lasso_[a-z0-9_]+)`", DOCS.read_text(), re.MULTILINE))
    scraped = set()
    for family in scrape.families.values():
        if family.name.startswith("lasso_"):
            suffixes = SUFFIXES.get(family.type, ("",))
            scraped.add(family.name + (suffixes[0] if family.type == "counter" else ""))
    assert documented == scraped
