"""The naive forwarder: the obvious quart-trio + httpx proxy, as a baseline.

Exactly the shape measured in the stack study (pystack.md, Appendix B): a
QuartTrio app whose ``POST /`` reads the body and forwards it with one shared
``httpx.AsyncClient`` created in ``before_serving``, returning the upstream's
bytes untouched. Served in-process by ``hypercorn.trio.serve``, one process,
like the gateway, so the two differ only in what Lasso does differently.

    python -m bench.naive_forwarder UPSTREAM_URL     (prints ``ready PORT``)
"""

from __future__ import annotations

import sys

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8545/"
HEADERS = {"content-type": "application/json"}

app = QuartTrio(__name__)


@app.before_serving
async def startup() -> None:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    app.client = httpx.AsyncClient(limits=limits, timeout=30.0)


@app.after_serving
async def shutdown() -> None:
    await app.client.aclose()


@app.post("/")
async def proxy() -> Response:
    body = await request.get_data()
    r = await app.client.post(UPSTREAM, content=body, headers=HEADERS)
    return Response(r.content, status=r.status_code, content_type="application/json")


async def main() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


if __name__ == "__main__":
    trio.run(main)
