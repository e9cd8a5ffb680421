"""The gateway as a benchmark target: ``lasso.daemon.serve`` in this process.

One chain, ``bench``, with one provider, the instant upstream. The gateway is
served exactly as ``lasso serve`` serves it (``lasso.daemon.serve``: Lasso's
own accept loop, ``lasso.web.server.FrontServer``, with its deadlines, body
budget and connection limit), bound to 127.0.0.1 on a kernel-chosen port.

    python -m bench.gateway_target UPSTREAM_URL [quart|nometrics|cachehit|obsoff|obson LOG]
    (prints ``ready PORT``)

With ``quart`` the same gateway answers ``POST /rpc/...`` from an ordinary Quart
route instead of the raw ASGI fast path, behind the same front end
(``FrontServer`` with the daemon's ``hypercorn_config`` and ``front_limits``;
the body budget is the fast path's own): the comparison that justifies the
fast path. With ``nometrics`` it is the fast path with ``[metrics] enabled = false``
(no request observer), for the ``metrics`` section's on/off comparison. With ``cachehit``
the load's ``eth_blockNumber`` is kept for an hour (``[cache] methods``), so every call
after the first is a response-cache hit (the ``cache`` section). ``obsoff`` and ``obson LOG``
are the ``obscost`` section's pair: Lasso's log handler (:mod:`lasso.logsetup`, as ``lasso
serve`` installs it) writing to the file ``LOG`` in both, and ``[metrics] enabled = false``
with the access log off, against metrics on (the default) with ``[logging] access_log =
true``: one access-log line per call into ``LOG``, as production logs to a file.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from typing import Any, cast

import trio
from hypercorn.app_wrappers import ASGIWrapper
from quart import Response, request

from lasso import logsetup
from lasso.config import Settings, parse_settings
from lasso.core.routes import parse_rpc_path
from lasso.daemon import front_limits, hypercorn_config, open_gateway, serve, tune_gc
from lasso.web.app import create_app
from lasso.web.server import FrontServer

PATH = "/rpc/bench"
SETTINGS = """
[chains.bench]
chain_id = 31337
providers = [ {{ id = "up", url = "{url}" }} ]
"""


async def main(upstream_url: str, frontend: str) -> None:
    toml = SETTINGS.format(url=upstream_url)
    if frontend == "nometrics":
        toml += "\n[metrics]\nenabled = false\n"
    if frontend == "obsoff":
        toml += "\n[metrics]\nenabled = false\n"
    if frontend == "obson":
        toml += "\n[logging]\naccess_log = true\n"
    if frontend == "cachehit":
        toml += '\n[cache]\nmethods = { eth_blockNumber = "3600000ms" }\n'
    settings = parse_settings(toml, env={})
    async with trio.open_nursery() as nursery:
        if frontend == "quart":
            binds = await nursery.start(serve_via_quart_route, settings)
        else:
            binds = await nursery.start(partial(serve, settings, host="127.0.0.1", port=0))
        tune_gc()  # as `lasso serve` does once it listens
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


async def serve_via_quart_route(
    settings: Settings, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    """The gateway with its JSON-RPC route in Quart (request objects, context, nursery)."""
    async with open_gateway(settings) as gateway:
        app = create_app(gateway)

        @app.post("/rpc/<path:rest>")
        async def rpc(rest: str) -> Response:
            route = parse_rpc_path(request.path)
            assert route is not None
            target = gateway.resolve(route, request.path)
            answer = await gateway.answer_body(target, await request.get_data())
            return Response(answer.body(), status=answer.status, content_type="application/json")

        config = hypercorn_config("127.0.0.1", 0, settings.server)
        front = FrontServer(ASGIWrapper(cast(Any, app)), config, front_limits(settings.server))
        await front.serve(trio.sleep_forever, task_status=task_status)


if __name__ == "__main__":
    mode = sys.argv[2] if len(sys.argv) > 2 else "fast"
    if mode in ("obsoff", "obson"):
        with open(sys.argv[3], "a") as log:
            logsetup.setup(None, stream=log)  # as `lasso serve` logs, into a file
            trio.run(main, sys.argv[1], mode)
    else:
        logging.basicConfig(level=logging.WARNING)
        trio.run(main, sys.argv[1], mode)
