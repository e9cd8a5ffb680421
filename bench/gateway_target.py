"""The gateway as a benchmark target: ``lasso.daemon.serve`` in this process.

One chain, ``bench``, with one provider, the instant upstream. The gateway is
served exactly as ``lasso serve`` serves it (hypercorn's trio worker,
in-process), bound to 127.0.0.1 on a kernel-chosen port.

    python -m bench.gateway_target UPSTREAM_URL     (prints ``ready PORT``)
"""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio

from lasso.config import parse_settings
from lasso.daemon import serve

PATH = "/rpc/bench"
SETTINGS = """
[chains.bench]
chain_id = 31337
providers = [ {{ id = "up", url = "{url}" }} ]
"""


async def main(upstream_url: str) -> None:
    settings = parse_settings(SETTINGS.format(url=upstream_url), env={})
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, settings, host="127.0.0.1", port=0))
        print(f"ready {binds[0].rsplit(':', 1)[1]}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    trio.run(main, sys.argv[1])
