"""The quart-trio app: everything that is not ``POST /rpc/...``.

Health, the chain list, metrics and the dashboard. Errors are JSON, never Quart's HTML
pages. Provider supervision does not live here (not in ``app.nursery``):
the daemon owns it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from lasso.config import DEFAULT_PROFILE
from lasso.core.jsonrpc import encode_json, error_body
from lasso.core.routes import RouteSpec
from lasso.dashboard import mount as mount_dashboard
from lasso.errors import LassoError
from lasso.gateway import Answer, Gateway
from lasso.metrics import CONTENT_TYPE, Metrics
from lasso.reload import ReloadState
from lasso.subscriptions.hub import SubscriptionHub
from lasso.web.health import chain_list, chain_metrics, health, readiness

if TYPE_CHECKING:
    from lasso.workers.instance import Instance

log = logging.getLogger("lasso.web")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(encode_json(payload), status=status, content_type="application/json")


def create_app(
    gateway: Gateway,
    hub: SubscriptionHub | None = None,
    reloads: ReloadState | None = None,
    *,
    metrics: Metrics | None = None,
    draining: trio.Event | None = None,
    instance: Instance | None = None,
) -> QuartTrio:
    """``reloads``: the config's generation and last reload, for ``/health``'s ``config``.
    ``metrics``: what ``/metrics`` serves; by default one made here for ``gateway`` (none
    with ``[metrics] enabled = false``: ``/metrics`` is then 404). ``draining``: set when
    the daemon starts to shut down (ends the dashboard's streams). ``instance``: under
    ``server.workers`` > 1, ``/health`` and ``/metrics`` answer for every worker
    (lasso.workers.instance)."""
    app = QuartTrio("lasso")
    if metrics is None and gateway.settings.metrics.enabled:
        metrics = Metrics(gateway, hub)
    # No background tasks live in app.nursery; do not wait for any at shutdown.
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = None
    mount_dashboard(app, gateway, hub, reloads, draining=draining)  # /dashboard (lasso.dashboard)

    @app.get("/health")
    @app.get("/api/health")
    async def get_health() -> Response:
        if "ready" in request.args:  # /health?ready: readiness, as /health/ready
            return _ready()
        report = health(gateway, reloads)
        if instance is not None:  # the whole group of workers
            report = await instance.health(report)
        return _json(report)

    @app.get("/health/ready")
    @app.get("/api/health/ready")
    async def get_ready() -> Response:
        return _ready()

    def _ready() -> Response:
        """Readiness for a load balancer: 503 when a chain has no provider able to serve."""
        status, body = readiness(gateway)
        response = _json(body, status)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/metrics")
    async def get_metrics_text() -> Response:
        if metrics is None:
            body = error_body(None, -32600, "Not Found: metrics are disabled ([metrics] enabled)")
            return Response(body, status=404, content_type="application/json")
        body = metrics.render()
        if instance is not None:  # every worker's series, labelled worker="<index>"
            body = await instance.metrics(body)
        return Response(body, content_type=CONTENT_TYPE)

    @app.get("/api/chains")
    async def get_chains() -> Response:
        return _json(chain_list(gateway))

    @app.get("/api/metrics/<chain>")
    async def get_metrics(chain: str) -> Response:
        slug = request.args.get("profile", DEFAULT_PROFILE)
        try:
            target = gateway.resolve(RouteSpec(chain=chain, profile=slug), request.path)
        except LassoError as exc:
            return Response(Answer.error(exc).body(), status=404, content_type="application/json")
        return _json(chain_metrics(gateway, target.chain, slug))

    @app.get("/")
    async def index() -> Response:
        return _json(
            {"name": "lasso", "rpc": "/rpc/{chain}", "health": "/health", "ready": "/health/ready"}
        )

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        body = error_body(None, -32600 if code < 500 else -32603, exc.name)
        return Response(body, status=code, content_type="application/json")

    @app.errorhandler(Exception)
    async def internal_error(exc: Exception) -> Response:
        log.exception("internal error", exc_info=exc)
        return Response(
            error_body(None, -32603, "Internal error"), status=500, content_type="application/json"
        )

    return app
