"""The gateway as a WebSocket benchmark target: ``lasso.daemon.serve`` in this process.

Like ``bench/gateway_target.py`` (served exactly as ``lasso serve`` serves
it, 127.0.0.1, a kernel-chosen port), but its one provider has both a ``url``
(the instant HTTP upstream) and a ``ws_url`` (the instant WebSocket upstream,
``bench/ws_upstream.py``), and the settings suit thousands of idle clients:

* ``ws_idle_timeout_ms = 0``: subscribed clients that send nothing stay open;
* ``block_time_ms`` one hour: the benchmark emits heads only when it wants
  to, and a newHeads stream that saw no head for 3 block times would
  otherwise fail over (there is nowhere to fail over to);
* ``shutdown_grace_ms = 1000``, ``[websocket] route_unary = true``;
* ``max_connections``: the cell's client count plus ``CONNECTION_HEADROOM``,
  never below the default (10,000), so the front end's connection limit
  never answers a benchmark client with a 503; ``max_ws_connections`` the
  same, and no per-address cap (every benchmark client is 127.0.0.1).

The open-file limit is raised as ``lasso serve`` raises it
(``lasso.daemon.raise_open_file_limit``: the soft limit to the hard one, a
warning if it stays below ``max_connections`` plus a margin).

    python -m bench.ws_gateway HTTP_URL WS_URL [CLIENTS]   (prints ``ready PORT``)
"""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio

from lasso.config import ServerConfig, parse_settings
from lasso.daemon import raise_open_file_limit, serve, tune_gc

CHAIN = "bench"
CONNECTION_HEADROOM = 64  # beyond the clients: nothing else connects, but never be exact
SETTINGS = """
[server]
ws_idle_timeout_ms = 0
max_connections = {max_connections}
max_ws_connections = {max_connections}
max_connections_per_ip = 0
shutdown_grace_ms = 1000

[websocket]
route_unary = true

[chains.bench]
chain_id = 31337
block_time_ms = 3_600_000
providers = [ {{ id = "up", url = "{url}", ws_url = "{ws_url}" }} ]
"""


def max_connections(clients: int) -> int:
    return max(ServerConfig().max_connections, clients + CONNECTION_HEADROOM)


async def main(http_url: str, ws_url: str, clients: int) -> None:
    text = SETTINGS.format(url=http_url, ws_url=ws_url, max_connections=max_connections(clients))
    settings = parse_settings(text, env={})
    raise_open_file_limit(settings.server.max_connections)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, settings, host="127.0.0.1", port=0))
        tune_gc()  # as `lasso serve` does once it listens
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
