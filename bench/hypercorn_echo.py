"""A bare hypercorn-trio ASGI app answering every POST with a fixed JSON-RPC result.

The floor of Lasso's own front-end stack (hypercorn's HTTP/1.1 protocol on trio, an ASGI
call per request) with nothing behind it: what a cache hit cannot go below. It echoes
the request's ``id`` as the instant upstream does.

Run: ``python -m bench.hypercorn_echo`` (prints ``ready PORT``; 127.0.0.1, a kernel port).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

_ID = re.compile(rb'"id"\s*:\s*("[^"]*"|-?\d+|null)')
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    m = _ID.search(body)
    rid = m.group(1) if m else b"null"
    reply = b'{"jsonrpc":"2.0","id":' + rid + b',"result":"0x121eac0"}'
    headers = [*_HEADERS, (b"content-length", b"%d" % len(reply))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


async def main() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_max_requests = 1_000_000  # as Lasso sets it
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    trio.run(main)
