"""``GET /dashboard``: one self-contained HTML page (no external asset, no CDN: many
deployments are offline), locked to its own origin by its Content-Security-Policy."""

from __future__ import annotations

import re

import pytest

from lasso.web.asgi import LassoASGI
from tests.support.asgi import asgi_request


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/"])
async def test_the_page_is_self_contained(app: LassoASGI, path: str) -> None:
    response = await asgi_request(app, "GET", path)
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    page = response.body.decode()
    assert page.startswith("<!doctype html>")
    assert re.findall(r"(?:src|href)\s*=", page) == []  # no script, style or image fetched
    assert re.findall(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", page) == []
    assert "innerHTML" not in page.replace("never innerHTML", "")  # textContent only
    assert 'BASE + "/events" + QUERY' in page  # the feed, with the page's own ?api_key=


async def test_everything_lives_under_the_dashboard_prefix(app: LassoASGI) -> None:
    quart = app.fallback
    rules = sorted(r.rule for r in quart.url_map.iter_rules() if "dashboard" in r.rule)  # type: ignore[attr-defined]
    assert rules == [
        "/dashboard",
        "/dashboard/",
        "/dashboard/events",
        "/dashboard/snapshot.json",
    ]
    assert all(r.startswith("/dashboard") for r in rules)
