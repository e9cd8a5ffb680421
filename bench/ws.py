"""Section ``ws``: unary JSON-RPC round-trips over the client WebSocket endpoint.

Targets, each loaded by ``bench/ws_load.py`` (its own process) with
``eth_blockNumber`` frames:

    direct          straight at the instant WebSocket upstream (bench/ws_upstream.py): the floor
    gateway->ws     ws://.../ws/rpc/bench?transport=ws    the gateway forwards over its one
                    upstream WebSocket (to the same instant WebSocket upstream)
    gateway->http   ws://.../ws/rpc/bench?transport=http  the gateway forwards over HTTP
                    (to the instant HTTP upstream, bench/instant_upstream.py)

The gateway's one provider has both a ``url`` and a ``ws_url``; the query
parameter picks the upstream transport, and the WebSocket upstream's call
counter confirms which one answered (column ``via ws %``). Load shapes:
``1`` (one socket, one call at a time), ``16 sockets`` (sixteen sockets, one
call each, like the ``http`` section's c=16) and ``16 pipelined`` (one socket,
sixteen calls in flight: what a dapp sharing one socket does).
"""

from __future__ import annotations

import trio

from bench.procs import Child, launched, python_module, run_json
from bench.report import Column, Derived, Options, Row, Section, SectionResult
from bench.report import per_request_us as _us
from bench.report import ratio as _ratio
from bench.ws_wire import call, connect, run_trio

SHAPES: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("16 sockets", 16, 1),
    ("16 pipelined", 1, 16),
)
GATEWAY_PATH = "/ws/rpc/bench"
LINK_TIMEOUT_S = 10.0

COLUMNS = (
    Column("target", "target"),
    Column("shape", "load"),
    Column("rps", "req/s", ",.0f"),
    Column("p50_ms", "p50 ms", ".3f"),
    Column("p99_ms", "p99 ms", ".3f"),
    Column("cpu_us", "CPU µs/req", ",.0f"),
    Column("cpu_busy_pct", "CPU %", ".0f"),
    Column("upstream_cpu_us", "upstream µs/req", ",.0f"),
    Column("loadgen_cpu_us", "loadgen µs/req", ",.0f"),
    Column("machine_busy_pct", "machine %", ".0f"),
    Column("via_ws_pct", "via ws %", ".0f"),
    Column("errors", "errors"),
)


async def _upstream_calls(port: int, wait_for_link: bool = False) -> int:
    """Calls the WebSocket upstream has answered (optionally once the gateway is linked)."""
    with await connect(f"ws://127.0.0.1:{port}/control") as ctl, trio.fail_after(LINK_TIMEOUT_S):
        while True:
            stats = await call(ctl, "bench_stats", [])
            if not wait_for_link or stats["connections"] >= 1:
                return int(stats["requests"])
            await trio.sleep(0.05)


def _cell(
    target: str,
    url: str,
    child: Child,
    upstream: Child,
    ws_upstream: Child,
    shape: tuple[str, int, int],
    opts: Options,
) -> Row:
    """One load run; ``upstream`` is the process that answers the calls behind ``child``."""
    name, sockets, depth = shape
    argv = python_module(
        "bench.ws_load",
        *("--url", url, "-c", sockets, "--depth", depth),
        *("--duration", opts.duration_s, "--warmup", opts.warmup_s),
        *("--watch-pid", child.pid, "--watch-pid", upstream.pid),
    )
    calls0 = run_trio(_upstream_calls, ws_upstream.port)
    load = run_json(f"ws load {name} -> {target}", argv, opts.duration_s + opts.warmup_s + 30)
    calls = run_trio(_upstream_calls, ws_upstream.port) - calls0
    count, cpu_s = load["count"], load["cpu_s"][str(child.pid)]
    return {
        "target": target,
        "shape": name,
        "sockets": sockets,
        "depth": depth,
        "rps": load["rps"],
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
        "cpu_us": _us(cpu_s, count),
        "cpu_busy_pct": 100 * cpu_s / load["duration_s"],
        "upstream_cpu_us": _us(load["cpu_s"][str(upstream.pid)], count),
        "loadgen_cpu_us": _us(load["loadgen_cpu_s"], count),
        "machine_busy_pct": load["machine_busy_pct"],
        "via_ws_pct": 100 * calls / load["answered"] if load["answered"] else None,
        "ws_upstream_calls": calls,
        "answered": load["answered"],
        "errors": load["errors"],
        "error_kinds": load["error_kinds"],
        "reconnects": load["reconnects"],
        "count": count,
    }


def _ms(name: str, a: Row, b: Row, key: str) -> Derived:
    value = None if a[key] is None or b[key] is None else a[key] - b[key]
    return Derived(name, value, " ms", "+.3f")


def _derived(rows: list[Row]) -> list[Derived]:
    cell = {(r["target"], r["shape"]): r for r in rows}
    out = []
    for shape, _, _ in SHAPES:
        gw, direct = cell.get(("gateway->ws", shape)), cell.get(("direct", shape))
        http = cell.get(("gateway->http", shape))
        if gw is None or direct is None:
            continue
        label = f"{shape:<12}"
        out += [
            _ms(f"{label} added latency p50 (gateway->ws - direct)", gw, direct, "p50_ms"),
            _ms(f"{label} added latency p99 (gateway->ws - direct)", gw, direct, "p99_ms"),
            Derived(
                f"{label} gateway->ws req/s / direct req/s", _ratio(gw["rps"], direct["rps"]), "x"
            ),
        ]
        if http is not None:
            out.append(
                Derived(
                    f"{label} gateway CPU/req: ->http / ->ws",
                    _ratio(http["cpu_us"], gw["cpu_us"]),
                    "x",
                )
            )
    return out


def run(opts: Options) -> SectionResult:
    rows: list[Row] = []
    with (
        launched("instant upstream", python_module("bench.instant_upstream")) as http_up,
        launched("ws upstream", python_module("bench.ws_upstream")) as ws_up,
    ):
        direct_url = f"ws://127.0.0.1:{ws_up.port}/"
        for shape in SHAPES:
            rows.append(_cell("direct", direct_url, ws_up, ws_up, ws_up, shape, opts))
        argv = python_module(
            "bench.ws_gateway", f"http://127.0.0.1:{http_up.port}/", f"ws://127.0.0.1:{ws_up.port}/"
        )
        with launched("gateway", argv) as gateway:
            run_trio(_upstream_calls, ws_up.port, True)
            base = f"ws://127.0.0.1:{gateway.port}{GATEWAY_PATH}"
            for target, upstream in (("gateway->ws", ws_up), ("gateway->http", http_up)):
                url = f"{base}?transport={target.rsplit('>', 1)[1]}"
                for shape in SHAPES:
                    rows.append(_cell(target, url, gateway, upstream, ws_up, shape, opts))
    notes = [f"{r['target']} {r['shape']} errors: {r['error_kinds']}" for r in rows if r["errors"]]
    return SectionResult(rows, _derived(rows), notes + NOTES)


NOTES = [
    "load shapes: '1' = one socket, one call at a time; '16 sockets' = 16 sockets, one call "
    "each; '16 pipelined' = one socket with 16 calls in flight (answers matched by id)",
    "CPU µs/req = the target's utime+stime in the window / answers; for 'direct' the target "
    "is the WebSocket upstream itself; 'upstream µs/req' is the upstream that answered the "
    "gateway (WebSocket for ->ws, HTTP for ->http)",
    "via ws % = calls the WebSocket upstream answered during the cell / answers the load "
    "generator read (warm-up included): 100 for ->ws, 0 for ->http",
    "target, upstreams and load generator share this machine's cores (see the http section)",
]


SECTION = Section("ws", "WebSocket unary round-trips (eth_blockNumber)", COLUMNS, run)
