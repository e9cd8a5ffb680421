"""A closed-loop JSON-RPC load generator over WebSocket (hand-rolled, ``bench/ws_wire.py``).

``--connections`` sockets each keep ``--depth`` ``eth_blockNumber`` calls in
flight: every answer is recorded and immediately replaced by the next call
(answers of one socket are matched by id, so a pipelining server may answer
out of order). ``-c 16 --depth 1`` is sixteen sockets with one call each,
like ``bench/load.py``'s keep-alive connections; ``-c 1 --depth 16`` is one
socket with sixteen pipelined calls. Latency is ``time.perf_counter_ns()``
from just before the frame is sent to the answer being read; the CPU of the
``--watch-pid`` processes is sampled at the measured window's edges.

    python -m bench.ws_load --url ws://127.0.0.1:P/ws/rpc/bench [-c 16] [--depth 1]
                            [--duration 4] [--warmup 1] [--watch-pid PID ...]

prints one JSON object: count, duration_s, rps, p50_ms, p99_ms, errors, ...
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import trio

from bench.load import add_window_options, run_window
from bench.ws_wire import HandshakeError, WsClient, WsClosed, split_url

_ID = re.compile(rb'"id"\s*:\s*(\d+)')
_REQUEST = b'{"jsonrpc":"2.0","id":%d,"method":"eth_blockNumber","params":[]}'


@dataclass
class Window:
    recording: bool = False
    reconnects: int = 0
    answered: int = 0  # every answer read, warm-up included
    latencies_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def fail(self, what: str) -> None:
        if self.recording:
            self.errors[what] += 1


async def connection(url: str, depth: int, window: Window) -> None:
    """One socket keeping ``depth`` calls in flight; reconnect if it is lost."""
    host, port, target = split_url(url)
    ids = iter(range(1, 1 << 62))
    while True:
        try:
            ws = await WsClient.connect(host, port, target)
        except (OSError, HandshakeError) as exc:
            window.fail(f"{type(exc).__name__}: {exc}")
            await trio.sleep(0.05)
            continue
        with ws:
            started: dict[int, int] = {}
            try:
                frames = []
                for _ in range(depth):
                    rid = next(ids)
                    frames.append(ws.frame(_REQUEST % rid))
                    started[rid] = time.perf_counter_ns()
                await ws.send_raw(b"".join(frames))
                while True:
                    messages = await ws.receive()
                    now = time.perf_counter_ns()
                    frames = []
                    for message in messages:
                        match = _ID.search(message)
                        began = started.pop(int(match.group(1)), None) if match else None
                        if began is None:
                            window.fail(f"unexpected message: {message[:120]!r}")
                            continue
                        window.answered += 1
                        if window.recording:
                            window.latencies_ns.append(now - began)
                            if b'"result"' not in message:
                                window.errors[f"error answer: {message[:120]!r}"] += 1
                        rid = next(ids)
                        frames.append(ws.frame(_REQUEST % rid))
                        started[rid] = time.perf_counter_ns()
                    if frames:
                        await ws.send_raw(b"".join(frames))
            except (OSError, WsClosed) as exc:
                window.fail(f"{type(exc).__name__}: {exc}")
                window.reconnects += window.recording


async def measure(
    url: str, connections: int, depth: int, duration_s: float, warmup_s: float, pids: list[int]
) -> dict[str, object]:
    window = Window()

    def start(nursery: trio.Nursery) -> None:
        for _ in range(connections):
            nursery.start_soon(connection, url, depth, window)

    summary = await run_window(start, window, duration_s, warmup_s, pids)
    return {"connections": connections, "depth": depth, "answered": window.answered, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ws_load", description=__doc__)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/path[?query]")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("--depth", type=int, default=1, help="calls in flight per socket")
    add_window_options(parser)
    args = parser.parse_args()
    result = trio.run(
        measure,
        args.url,
        args.connections,
        args.depth,
        args.duration,
        args.warmup,
        args.watch_pid,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
