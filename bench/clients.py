"""Section ``clients``: why lasso's upstream transport is httpcore, not httpx.

One trio process per client POSTs ``eth_blockNumber`` to the instant upstream
in a closed loop at each concurrency and reports its own CPU per request
(``time.process_time``) and requests/s over the measured window:

    httpx           httpx.AsyncClient, one shared client (keep-alive pool of 64)
    httpcore-pool   httpcore.AsyncConnectionPool(max_connections=64)
    lasso           lasso.upstream.http.HttpTransport: httpcore HTTP/1.1
                    connections from lasso's own LIFO idle list

The worker half of this module runs as ``python -m bench.clients --client
NAME --url URL ...`` and prints JSON; :func:`run` starts the upstream and one
worker per client.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpcore
import httpx
import trio

from bench.load import BODY
from bench.procs import launched, python_module, run_json
from bench.report import Column, Derived, Options, Row, Section, SectionResult, ratio
from lasso.upstream.http import HttpTransport

Post = Callable[[], Awaitable[bytes]]
CLIENTS = ("httpx", "httpcore-pool", "lasso")
_HEADERS = {"content-type": "application/json"}


@asynccontextmanager
async def _httpx(url: str) -> AsyncIterator[Post]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as client:

        async def post() -> bytes:
            return (await client.post(url, content=BODY, headers=_HEADERS)).content

        yield post


@asynccontextmanager
async def _httpcore_pool(url: str) -> AsyncIterator[Post]:
    headers = [(b"content-type", b"application/json")]
    async with httpcore.AsyncConnectionPool(max_connections=64) as pool:

        async def post() -> bytes:
            response = await pool.request("POST", url, content=BODY, headers=headers)
            return response.content

        yield post


@asynccontextmanager
async def _lasso(url: str) -> AsyncIterator[Post]:
    transport = HttpTransport(url, {}, provider_id="bench")
    try:

        async def post() -> bytes:
            return (await transport.post(BODY)).body

        yield post
    finally:
        await transport.aclose()


DRIVERS = {"httpx": _httpx, "httpcore-pool": _httpcore_pool, "lasso": _lasso}


@dataclass
class _Tally:
    recording: bool = False
    count: int = 0
    errors: int = 0


async def _loop(post: Post, tally: _Tally) -> None:
    while True:
        ok = b'"result"' in await post()
        if tally.recording:
            tally.count += 1
            tally.errors += not ok


async def measure(client: str, url: str, conc: int, duration_s: float, warmup_s: float) -> Row:
    tally = _Tally()
    async with DRIVERS[client](url) as post, trio.open_nursery() as nursery:
        for _ in range(conc):
            nursery.start_soon(_loop, post, tally)
        await trio.sleep(warmup_s)
        cpu0, t0 = time.process_time(), time.perf_counter()
        tally.recording = True
        await trio.sleep(duration_s)
        tally.recording = False
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return {
        "client": client,
        "concurrency": conc,
        "rps": tally.count / wall,
        "cpu_us": cpu / tally.count * 1e6 if tally.count else None,
        "errors": tally.errors,
        "count": tally.count,
    }


async def _worker(args: argparse.Namespace) -> list[Row]:
    return [
        await measure(args.client, args.url, c, args.duration, args.warmup)
        for c in args.concurrency
    ]


COLUMNS = (
    Column("client", "client"),
    Column("concurrency", "conc"),
    Column("rps", "req/s", ",.0f"),
    Column("cpu_us", "client CPU µs/req", ",.0f"),
    Column("errors", "errors"),
)


def _derived(rows: list[Row], concurrencies: tuple[int, ...]) -> list[Derived]:
    cpu = {(r["client"], r["concurrency"]): r["cpu_us"] for r in rows}
    out = []
    for c in concurrencies:
        for other in ("httpx", "httpcore-pool"):
            name = f"c={c:<2} CPU/req {other} / lasso HttpTransport"
            out.append(Derived(name, ratio(cpu[(other, c)], cpu[("lasso", c)]), "x"))
    return out


def run(opts: Options) -> SectionResult:
    rows: list[Row] = []
    with launched("instant upstream", python_module("bench.instant_upstream")) as upstream:
        url = f"http://127.0.0.1:{upstream.port}/"
        for client in CLIENTS:
            argv = python_module(
                "bench.clients",
                *("--client", client, "--url", url),
                *("--duration", opts.duration_s, "--warmup", opts.warmup_s),
                *(f"--concurrency={c}" for c in opts.concurrencies),
            )
            timeout = (opts.duration_s + opts.warmup_s) * len(opts.concurrencies) + 30
            rows += run_json(f"client worker {client}", argv, timeout)
    notes = ["client CPU includes the trio scheduler and the closed loop itself, same for all"]
    return SectionResult(rows, _derived(rows, opts.concurrencies), notes)


SECTION = Section("clients", "Upstream HTTP client cost", COLUMNS, run)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("--client", choices=CLIENTS, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, action="append", required=True)
    print(json.dumps(trio.run(_worker, parser.parse_args())))


if __name__ == "__main__":
    main()
