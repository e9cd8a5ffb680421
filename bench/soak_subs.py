"""The soak's subscribers: N WebSocket clients, each checking every ``newHeads`` it gets.

    python -m bench.soak_subs WS_URL N RESULT.json [--stall-s 10]   (prints ``ready 0``)

Each client opens ``WS_URL`` (hand-rolled RFC 6455, :mod:`bench.ws_wire`), sends
``eth_subscribe ["newHeads"]`` and then reads heads until SIGTERM or SIGINT. Every
head must be the next one: number = previous + 1 and ``parentHash`` = the previous
head's ``hash``. Anything else is an error of its kind (``duplicate``: a number seen
already, ``gap``: numbers skipped, ``parent``: the same number on another parent, i.e.
a fork the client was not told about). So is a transport error, a close, a subscribe
that fails, or no head for ``--stall-s`` seconds (``stall``); after a transport error
the client reconnects and subscribes again (and the heads it missed are a ``gap``).

``ready 0`` is printed once every client is subscribed. On exit ``RESULT.json`` gets
one entry per client: first and last head number, heads received, errors by kind.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

from bench.ws_wire import HandshakeError, WsClient, WsClosed, connect, raise_nofile


@dataclass
class Watch:
    first: int | None = None
    last: int | None = None
    last_hash: str | None = None
    heads: int = 0
    reconnects: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 3:
            self.examples.append(f"{kind}: {detail}"[:300])

    def head(self, number: int, block_hash: str, parent: str) -> None:
        self.heads += 1
        if self.last is None or self.first is None:
            self.first = number
        elif number <= self.last:
            self.error("duplicate", f"head {number} after {self.last}")
            return
        elif number > self.last + 1:
            self.error("gap", f"head {number} after {self.last}")
        elif parent != self.last_hash:
            self.error("parent", f"head {number} parent {parent} != {self.last_hash}")
        self.last, self.last_hash = number, block_hash


async def _subscribe(ws: WsClient) -> str:
    await ws.send_text(b'{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
    while True:
        for message in await ws.receive():
            answer = json.loads(message)
            if answer.get("id") == 1:
                if "result" not in answer:
                    raise RuntimeError(f"eth_subscribe: {answer.get('error')}")
                return str(answer["result"])


async def client(url: str, watch: Watch, stall_s: float, subscribed: trio.Event) -> None:
    while True:
        try:
            with await connect(url) as ws:
                sub = await _subscribe(ws)
                subscribed.set()
                while True:
                    with trio.move_on_after(stall_s) as scope:
                        messages = await ws.receive()
                    if scope.cancelled_caught:
                        watch.error("stall", f"no head for {stall_s:g} s after {watch.last}")
                        continue
                    for message in messages:
                        note = json.loads(message)
                        params = note.get("params") or {}
                        if params.get("subscription") != sub:
                            watch.error("foreign", message[:200].decode(errors="replace"))
                            continue
                        head = params["result"]
                        watch.head(int(head["number"], 16), head["hash"], head["parentHash"])
        except (OSError, WsClosed, HandshakeError, RuntimeError, ValueError, KeyError) as exc:
            watch.error("transport", f"{type(exc).__name__}: {exc}")
            watch.reconnects += 1
            await trio.sleep(0.2)


async def main(url: str, n: int, result: Path, stall_s: float) -> None:
    raise_nofile()
    watches = [Watch() for _ in range(n)]
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            events = [trio.Event() for _ in range(n)]
            for watch, event in zip(watches, events, strict=True):
                nursery.start_soon(client, url, watch, stall_s, event)
            for event in events:
                await event.wait()
            print("ready 0", flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    doc = [{**asdict(w), "errors": dict(w.errors)} for w in watches]
    tmp = result.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, result)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_subs", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("result", type=Path)
    parser.add_argument("--stall-s", type=float, default=10.0)
    args = parser.parse_args()
    trio.run(main, args.url, args.n, args.result, args.stall_s)


if __name__ == "__main__":
    cli()
