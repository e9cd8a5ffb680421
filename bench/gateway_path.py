"""CPU per call of Lasso's own code below the front end, without sockets.

``Gateway.parse`` + ``Gateway.answer_parsed`` for one ``eth_blockNumber`` body, as
the HTTP fast path calls them, on a gateway opened as ``lasso serve`` opens it
(``open_gateway``, metrics and dashboard observers attached), with an instant
in-process upstream transport in place of the socket (it checkpoints once, as a
real exchange does at least once). Everything a request does in Lasso runs:
refusals, cache policy, eligibility, routing plan, breaker admission, the attempt's
deadline scope, reply classification, chain-state bookkeeping, metrics and
dashboard observers; only the HTTP bytes on the wire (front end and upstream
socket) are left out.

    python -m bench.gateway_path [--calls 20000] [--repeat 7] [--mode forward|cachehit]

prints the median, min and max µs per call over the repeats (``time.process_time``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from lasso.config import ProviderConfig, parse_settings
from lasso.core.routes import parse_rpc_path
from lasso.daemon import open_gateway, tune_gc
from lasso.dashboard import Dashboard
from lasso.metrics import Metrics
from lasso.upstream.http import HttpResponse, HttpStatistics, PostTransport

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
SETTINGS = """
[chains.bench]
chain_id = 31337
providers = [ { id = "up", url = "http://127.0.0.1:9/" } ]
"""
_ID_AT = len(b'{"jsonrpc":"2.0","id":')


class InstantTransport:
    """Answers every POST at once with ``eth_blockNumber``'s result, echoing the id."""

    def __init__(self) -> None:
        self.requests = 0

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        self.requests += 1
        await trio.lowlevel.checkpoint()
        upstream_id = body[_ID_AT : body.index(b",", _ID_AT)]
        return HttpResponse(
            200, b'{"jsonrpc":"2.0","id":%b,"result":"0x121eac0"}' % upstream_id, None
        )

    async def reap_idle(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None

    def statistics(self) -> HttpStatistics:
        return HttpStatistics(self.requests, 0, 0, 0, 0)


def _transport(_chain: str, _config: ProviderConfig) -> PostTransport:
    return InstantTransport()


async def measure(calls: int, repeat: int, mode: str) -> list[float]:
    toml = SETTINGS
    if mode == "cachehit":
        toml += '\n[cache]\nmethods = { eth_blockNumber = "3600000ms" }\n'
    settings = parse_settings(toml, env={})
    async with open_gateway(settings, transports=_transport) as gateway:
        Metrics(gateway)
        Dashboard(gateway)
        route = parse_rpc_path("/rpc/bench")
        assert route is not None
        target = gateway.resolve(route, "/rpc/bench")
        tune_gc()  # as `lasso serve` does once it listens
        samples = []
        for _ in range(repeat + 1):  # the first round warms up
            started = time.process_time()
            for _ in range(calls):
                answer = await gateway.answer_parsed(target, gateway.parse(BODY))
            samples.append((time.process_time() - started) / calls * 1e6)
            assert b'"result":"0x121eac0"' in answer.parts[0], answer
        return samples[1:]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_path", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--mode", choices=("forward", "cachehit"), default="forward")
    args = parser.parse_args()
    samples = trio.run(measure, args.calls, args.repeat, args.mode)
    print(
        f"{args.mode}: {statistics.median(samples):.1f} µs/call "
        f"(min {min(samples):.1f}, max {max(samples):.1f}, {args.repeat} x {args.calls} calls)"
    )


if __name__ == "__main__":
    main()
