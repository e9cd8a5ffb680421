"""The soak's gateway: ``lasso.daemon.serve`` for a config file, logging as ``lasso serve`` does.

    python -m bench.soak_gateway CONFIG.toml LOG_PATH [--inject-leak]   (prints ``ready PORT``)

The settings are read from ``CONFIG.toml`` as ``lasso serve --config`` reads them
(``[metrics]`` on, ``[logging] access_log = true``, the cache as shipped: the soak
writes that file). Lasso's one log handler (:mod:`lasso.logsetup`) writes every line,
the access log's included, to ``LOG_PATH``, as production logs to a file or journald.

``--inject-leak`` is the breach the soak must catch: every second the process starts
one task that never ends, holding an open socket and 256 KiB, as a leaking handler
would. The soak then reports leaked tasks, leaked descriptors and RSS growth.
"""

from __future__ import annotations

import argparse
import socket
from functools import partial

import trio

from lasso import logsetup
from lasso.config import load_settings
from lasso.daemon import raise_open_file_limit, serve, tune_gc


async def _leak_forever() -> None:
    hold = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM), bytearray(256 * 1024))
    try:
        await trio.sleep_forever()
    finally:
        hold[0].close()


async def _inject_leak(nursery: trio.Nursery) -> None:
    while True:
        await trio.sleep(1.0)
        nursery.start_soon(_leak_forever)


async def main(config: str, leak: bool) -> None:
    settings = load_settings(config, env={})
    raise_open_file_limit(settings.server.max_connections)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, settings, host="127.0.0.1", port=0))
        tune_gc()  # as `lasso serve` does once it listens
        if leak:
            nursery.start_soon(_inject_leak, nursery)
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_gateway", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("log")
    parser.add_argument("--inject-leak", action="store_true")
    args = parser.parse_args()
    with open(args.log, "a") as log:
        logsetup.setup(None, stream=log)
        trio.run(main, args.config, args.inject_leak)


if __name__ == "__main__":
    cli()
