"""The dashboard's routes on the quart-trio app, all under ``/dashboard``.

* ``GET /dashboard``: the page (one self-contained HTML file, no external asset);
* ``GET /dashboard/events``: the live feed, Server-Sent Events (:mod:`.stream`);
* ``GET /dashboard/snapshot.json``: one snapshot, for scripts and tests.

One prefix, so the gate's ``protect_observability`` covers all three at once.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import trio
from quart import Response

from lasso.core.jsonrpc import error_body
from lasso.dashboard.board import Dashboard

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from lasso.gateway import Gateway
    from lasso.reload import ReloadState
    from lasso.subscriptions.hub import SubscriptionHub

__all__ = ["PAGE_SECURITY", "mount"]

#: The page may run its own inline script and style and talk to its own origin, nothing else.
PAGE_SECURITY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _page() -> bytes:
    return resources.files("lasso.dashboard").joinpath("page.html").read_bytes()


def mount(
    app: QuartTrio,
    gateway: Gateway,
    hub: SubscriptionHub | None,
    reloads: ReloadState | None,
    *,
    draining: trio.Event | None = None,
) -> Dashboard:
    dashboard = Dashboard(gateway, hub, reloads, draining=draining)
    app.extensions["lasso.dashboard"] = dashboard  # for tests and the composition root
    page = _page()

    @app.get("/dashboard")
    @app.get("/dashboard/")
    async def dashboard_page() -> Response:
        response = Response(page, content_type="text/html; charset=utf-8")
        response.headers["Content-Security-Policy"] = PAGE_SECURITY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/dashboard/snapshot.json")
    async def dashboard_snapshot() -> Response:
        response = Response(dashboard.encoded(), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/dashboard/events")
    async def dashboard_events() -> Response:
        streams = dashboard.streams
        if streams.full or streams.draining.is_set():
            body = error_body(None, -32005, "Too many dashboard streams; retry later")
            busy = Response(body, status=503, content_type="application/json")
            busy.headers["Retry-After"] = "5"
            return busy
        response = Response(streams.stream(), content_type="text/event-stream")
        response.timeout = None  # the stream ends itself (max_stream_s, draining, hang-up)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer it
        # Not kept alive once the feed ends: an idle keep-alive connection holds the
        # daemon's shutdown for its grace period, and the browser reconnects anyway.
        response.headers["Connection"] = "close"
        return response

    return dashboard
