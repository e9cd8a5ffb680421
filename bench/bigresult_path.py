"""The 5 MB ``eth_getLogs`` pass-through, timed below the front end.

A gateway opened as ``lasso serve`` opens it (``open_gateway``, the real
``HttpTransport``, metrics and dashboard observers), with one provider: the
``bench.bigresult_upstream`` process (its ~5 MB result). Per round, on the same
kept-alive connection setup:

* ``direct``: ``HttpTransport.post`` alone: the upstream's bytes read off the socket.
* ``gateway``: ``Gateway.parse`` + ``answer_parsed`` + ``Answer.body()``: the same read
  and everything Lasso does until the client's bytes are ready (reply check, empty
  check, logs policy, cache policy, dispatch, chain state, metrics, assembly).

``added`` is gateway - direct (medians). It also times the steps a result goes
through on its own: the reply's envelope decode (``msgspec.Raw``: a scan, no
objects), the one copy out of it, and the client answer's assembly; and it checks
that the client's bytes carry the upstream's result byte for byte.

    python -m bench.bigresult_path [--rounds 30] [--bytes 5000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import trio

from bench.bigresult_upstream import logs_result
from lasso.config import parse_settings
from lasso.core import jsonrpc
from lasso.core.routes import parse_rpc_path
from lasso.daemon import open_gateway
from lasso.dashboard import Dashboard
from lasso.metrics import Metrics
from lasso.upstream.http import HttpTransport

BODY = (
    b'{"jsonrpc":"2.0","id":7,"method":"eth_getLogs",'
    b'"params":[{"fromBlock":"0x1","toBlock":"0x2"}]}'
)
SETTINGS = """
[chains.bench]
chain_id = 31337
providers = [ {{ id = "up", url = "http://127.0.0.1:{port}/" }} ]
"""


def _ms(samples: list[float]) -> str:
    low, high = min(samples), max(samples)
    return f"p50 {statistics.median(samples):7.2f} ms  (min {low:6.2f}, max {high:6.2f})"


def _time_ms(fn: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def measure(port: int, rounds: int, result: bytes) -> None:
    settings = parse_settings(SETTINGS.format(port=port), env={})
    url = f"http://127.0.0.1:{port}/"
    direct = HttpTransport(url, {})
    upstream_body = b'{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[]}'
    async with open_gateway(settings) as gateway:
        Metrics(gateway)
        Dashboard(gateway)
        route = parse_rpc_path("/rpc/bench")
        assert route is not None
        target = gateway.resolve(route, "/rpc/bench")
        times: dict[str, list[float]] = {"direct": [], "gateway": []}
        cpu: dict[str, list[float]] = {"direct": [], "gateway": []}
        for index in range(rounds + 2):  # two warm-up rounds
            started, cpu_started = time.perf_counter(), time.process_time()
            await direct.post(upstream_body)
            direct_s, direct_cpu = time.perf_counter() - started, time.process_time() - cpu_started
            started, cpu_started = time.perf_counter(), time.process_time()
            answer = await gateway.answer_parsed(target, gateway.parse(BODY))
            client_bytes = answer.body()
            gateway_s, gateway_cpu = (
                time.perf_counter() - started,
                time.process_time() - cpu_started,
            )
            assert client_bytes == b'{"jsonrpc":"2.0","id":7,"result":' + result + b"}"
            if index >= 2:
                times["direct"].append(direct_s * 1000)
                times["gateway"].append(gateway_s * 1000)
                cpu["direct"].append(direct_cpu * 1000)
                cpu["gateway"].append(gateway_cpu * 1000)
        await direct.aclose()
    print(f"result: {len(result):,} bytes, {rounds} rounds")
    for name in ("direct", "gateway"):
        print(
            f"  {name:8} wall {_ms(times[name])}   CPU p50 {statistics.median(cpu[name]):6.2f} ms"
        )
    added = statistics.median(times["gateway"]) - statistics.median(times["direct"])
    added_cpu = statistics.median(cpu["gateway"]) - statistics.median(cpu["direct"])
    print(f"  added    wall p50 {added:+.2f} ms   CPU p50 {added_cpu:+.2f} ms")
    upstream = b'{"jsonrpc":"2.0","id":1,"result":' + result + b"}"
    steps = {
        "envelope decode (msgspec.Raw scan)": lambda: jsonrpc.decode_reply(upstream, 1),
        "copy of the result": lambda: bytes(bytearray(result)),
        "client answer assembly": lambda: jsonrpc.result_body(b"7", result),
    }
    for name, step in steps.items():
        print(f"  step: {name:36} {_ms(_time_ms(step, rounds))}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bigresult_path", description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--bytes", type=int, default=5_000_000)
    args = parser.parse_args()
    argv = [sys.executable, "-m", "bench.bigresult_upstream", "--port", "0"]
    argv += ["--bytes", str(args.bytes)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as upstream:
        try:
            assert upstream.stdout is not None
            port = int(upstream.stdout.readline().split()[1])
            trio.run(measure, port, args.rounds, logs_result(args.bytes))
        finally:
            upstream.terminate()


if __name__ == "__main__":
    main()
