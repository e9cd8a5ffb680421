"""The soak's upstream: a real lockstep anvil devnet, each node behind a cuttable relay.

    python -m bench.soak_chain STATE.json [--nodes 3] [--block-time 1]
                               [--flap-period 20] [--flap-cut 3] [--flap-node 2]
                               (prints ``ready PORT``, PORT = the flapping node's relay)

``lasso.devnet.open_devnet`` starts the nodes and mines a block on every node every
``--block-time`` seconds, in lockstep (identical hashes), so the gateway's ``newHeads``
flow. Every node is reached through a :class:`lasso.chaos.tcpcut.TcpRelay` (HTTP and
WebSocket share the node's one port). Node ``--flap-node`` flaps: every
``--flap-period`` seconds its relay is cut (every relayed connection reset, new ones
refused) for ``--flap-cut`` seconds, then restored.

``STATE.json`` is written at start and after every change: the relay URLs per node, the
flapping state and how many cuts were made. Signals steer the flapping (the harness
uses them to measure a quiet gateway with every provider up):

- SIGUSR1: pause: restore the relay now and make no more cuts;
- SIGUSR2: resume flapping;
- SIGHUP: outage (a breach the harness can inject): cut every relay for
  ``--flap-cut`` seconds at once.

SIGTERM or SIGINT stop the devnet and exit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio

from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.devnet import open_devnet


class Flapper:
    def __init__(self, relays: list[TcpRelay], flap: int, state_path: Path, urls: Any) -> None:
        self.relays, self.flap, self.path, self.urls = relays, flap, state_path, urls
        self.paused = False
        self.cuts = 0
        self.outages = 0
        self.wake = trio.Event()

    def save(self) -> None:
        doc = {
            "pid": os.getpid(),
            "nodes": self.urls,
            "flap_node": self.flap,
            "paused": self.paused,
            "cut_now": self.relays[self.flap].cut_active,
            "cuts": self.cuts,
            "outages": self.outages,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.path)

    async def run(self, period_s: float, cut_s: float) -> None:
        relay = self.relays[self.flap]
        while True:
            with trio.move_on_after(max(0.0, period_s - cut_s)):
                await self.wake.wait()
            self.wake = trio.Event()
            if self.paused:
                continue
            relay.cut()
            self.cuts += 1
            self.save()
            with trio.move_on_after(cut_s):
                await self.wake.wait()
            relay.restore()
            self.save()

    async def outage(self, cut_s: float) -> None:
        for relay in self.relays:
            relay.cut()
        self.outages += 1
        self.save()
        await trio.sleep(cut_s)
        for relay in self.relays:
            relay.restore()
        self.save()

    async def steer(self, sigs: Any, cut_s: float, nursery: trio.Nursery) -> None:
        async for signum in sigs:
            if signum in STOPS:
                nursery.cancel_scope.cancel()
                return
            if signum == signal.SIGHUP:
                nursery.start_soon(self.outage, cut_s)
                continue
            self.paused = signum == signal.SIGUSR1
            self.wake.set()  # a pause ends a cut in progress at once
            self.save()


STOPS = (signal.SIGTERM, signal.SIGINT)


async def main(args: argparse.Namespace) -> None:
    # The signals are taken over before any anvil starts, so none can orphan a node.
    with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, *STOPS) as sigs:
        await _run(args, sigs)


async def _run(args: argparse.Namespace, sigs: Any) -> None:
    async with (
        open_devnet(nodes=args.nodes, block_time_s=args.block_time, port_base=0) as devnet,
        AsyncExitStack() as stack,
    ):
        relays = [await stack.enter_async_context(open_tcp_relay(n.port)) for n in devnet.nodes]
        urls = [
            {"http": f"http://127.0.0.1:{r.port}", "ws": f"ws://127.0.0.1:{r.port}"} for r in relays
        ]
        flapper = Flapper(relays, args.flap_node, Path(args.state), urls)
        flapper.save()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flapper.steer, sigs, args.flap_cut, nursery)
            nursery.start_soon(flapper.run, args.flap_period, args.flap_cut)
            print(f"ready {relays[args.flap_node].port}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_chain", description=__doc__)
    parser.add_argument("state")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument("--flap-period", type=float, default=20.0)
    parser.add_argument("--flap-cut", type=float, default=3.0)
    parser.add_argument("--flap-node", type=int, default=2)
    trio.run(main, parser.parse_args())


if __name__ == "__main__":
    cli()
