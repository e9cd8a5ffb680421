"""The gateway as a WebSocket benchmark target: ``lasso.daemon.serve`` in this process.

Like ``bench/gateway_target.py`` (served exactly as ``lasso serve`` serves
it, 127.0.0.1, a kernel-chosen port), but its one provider has both a ``url``
(the instant HTTP upstream) and a ``ws_url`` (the instant WebSocket upstream,
``bench/ws_upstream.py``), and the settings suit thousands of idle clients:

* ``ws_idle_timeout_ms = 0``: subscribed clients that send nothing stay open;
* ``block_time_ms`` one hour: the benchmark emits heads only when it wants
  to, and a newHeads stream that saw no head for 3 block times would
  otherwise fail over (there is nowhere to fail over to);
* ``shutdown_grace_ms = 1000``, ``[websocket] route_unary = true``.

The soft ``RLIMIT_NOFILE`` is raised to the hard limit first (one descriptor
per client socket).

    python -m bench.ws_gateway HTTP_URL WS_URL     (prints ``ready PORT``)
"""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio

from bench.ws_wire import raise_nofile
from lasso.config import parse_settings
from lasso.daemon import serve, tune_gc

CHAIN = "bench"
SETTINGS = """
[server]
ws_idle_timeout_ms = 0
shutdown_grace_ms = 1000

[websocket]
route_unary = true

[chains.bench]
chain_id = 31337
block_time_ms = 3_600_000
providers = [ {{ id = "up", url = "{url}", ws_url = "{ws_url}" }} ]
"""


async def main(http_url: str, ws_url: str) -> None:
    raise_nofile()
    settings = parse_settings(SETTINGS.format(url=http_url, ws_url=ws_url), env={})
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, settings, host="127.0.0.1", port=0))
        tune_gc()  # as `lasso serve` does once it listens
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    trio.run(main, sys.argv[1], sys.argv[2])
