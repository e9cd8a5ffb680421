"""``bench.load`` with a request body of one's own (``--body JSON``).

    python -m bench.body_load --port P --path /rpc/bench --body '{"jsonrpc":...}' -c 1
                              [--duration 4] [--warmup 1] [--watch-pid PID ...]

The same closed loop, window and JSON output as :mod:`bench.load` (its workers, its
framing, its CPU sampling); only the body differs. Used by the ``biglogs`` and
``obscost`` sections.
"""

from __future__ import annotations

import argparse
import json

import trio

from bench.load import Window, add_window_options, request_bytes, run_window, worker


async def measure(
    port: int,
    path: str,
    body: bytes,
    connections: int,
    duration_s: float,
    warmup_s: float,
    pids: list[int],
) -> dict[str, object]:
    window = Window()
    request = request_bytes(port, path, body)

    def start(nursery: trio.Nursery) -> None:
        for _ in range(connections):
            nursery.start_soon(worker, port, request, window)

    summary = await run_window(start, window, duration_s, warmup_s, pids)
    return {"connections": connections, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.body_load", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--body", required=True, help="the JSON-RPC request body")
    parser.add_argument("-c", "--connections", type=int, default=1)
    add_window_options(parser)
    args = parser.parse_args()
    result = trio.run(
        measure,
        args.port,
        args.path,
        args.body.encode(),
        args.connections,
        args.duration,
        args.warmup,
        args.watch_pid,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
