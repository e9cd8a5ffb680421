"""``python -m battle replay FILE``: judge a saved fuzz failure again, from scratch.

A fresh lockstep devnet (3 anvil nodes) is seeded with the harness's chain (the devnet's
timestamps are fixed, so its hashes are the fuzz run's), Lasso serves it in this process
on a loopback port, and the saved request (:func:`battle.fuzz.save_failure`) goes to both,
judged by :func:`battle.oracle.judge`. The verdict is printed; the exit status is 1 if it
still fails, 0 if it is fixed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio

from battle.chaindata import ChainData, create_chain_data
from battle.fuzz import Judged, load_drawn, open_rig, show_answer
from lasso.config import Settings, parse_settings
from lasso.daemon import serve
from lasso.devnet import Devnet, open_devnet

CHAIN = "devnet"


def devnet_settings(devnet: Devnet, extra: str = "") -> Settings:
    """One chain with every node of ``devnet`` as a provider (HTTP and WS)."""
    providers = ",\n".join(
        f'{{ id = "n{n.index}", url = "{n.http_url}", ws_url = "{n.ws_url}", '
        f"priority = {n.index} }}"
        for n in devnet.nodes
    )
    return parse_settings(
        f"{extra}\n[chains.{CHAIN}]\nchain_id = 31337\nblock_time_ms = 1000\n"
        f"providers = [\n{providers}\n]\n",
        env={},
    )


@asynccontextmanager
async def serve_lasso(settings: Settings) -> AsyncIterator[str]:
    """Lasso's real front end on a loopback port until the block exits; yields its base URL."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, settings, host="127.0.0.1", port=0, shutdown=shutdown)
        )
        try:
            yield str(binds[0])
        finally:
            shutdown.set()


@asynccontextmanager
async def open_target(nodes: int = 3) -> AsyncIterator[tuple[Devnet, ChainData, str]]:
    """A seeded devnet and Lasso in front of it: (devnet, chain data, Lasso's JSON-RPC URL)."""
    async with open_devnet(nodes=nodes, block_time_s=None, port_base=0) as devnet:
        with trio.fail_after(60):
            data = await create_chain_data(devnet)
        async with serve_lasso(devnet_settings(devnet)) as base:
            yield devnet, data, f"{base}/rpc/{CHAIN}"


async def replay(path: Path) -> int:
    """Replay the saved failure at ``path``; 1 if it still fails, 0 if fixed."""
    record = json.loads(await trio.Path(path).read_text())
    drawn = load_drawn(record)
    print(f"replaying {path} (seed {record.get('seed')}, was [{record.get('rule')}])")
    print(f"request: {drawn.show()}")
    async with open_target() as (devnet, data, lasso_url):
        _warn_if_chain_differs(record, data)
        node = devnet.nodes[0]
        async with open_rig(lasso_url, node.http_url, node.ws_url) as rig:
            with trio.fail_after(120):
                judged = await rig.judge(drawn)
    return report(judged)


def report(judged: Judged) -> int:
    verdict = judged.verdict
    print(f"verdict: {'ok' if verdict.ok else 'FAIL'} [{verdict.rule}] {verdict.reason}")
    print(f"  node:  {show_answer(verdict.node)}")
    print(f"  lasso: {show_answer(verdict.lasso)}")
    print("fixed" if verdict.ok else "still fails")
    return 0 if verdict.ok else 1


def _warn_if_chain_differs(record: dict[str, Any], data: ChainData) -> None:
    saved = record.get("chain_head", {}).get("hash")
    if saved is not None and saved not in data.block_hashes:
        print(f"warning: the fuzz run's chain (head {saved}) is not this devnet's")


def main_replay(argv: Sequence[str]) -> int:
    """``python -m battle replay FILE`` (``argv`` without the ``replay`` word)."""
    parser = argparse.ArgumentParser(prog="python -m battle replay")
    parser.add_argument("file", type=Path, help="a saved failure (battle/.../failures/*.json)")
    args = parser.parse_args(list(argv))
    return trio.run(replay, args.file)
