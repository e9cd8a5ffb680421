"""Section ``http``: the gateway against going direct and against a naive forwarder.

Three targets, each its own process, each fed by the load generator
(``bench/load.py``, also its own process, so it never shares a GIL with what
it measures) at every concurrency:

    direct    load straight at the instant upstream: the floor
    gateway   lasso.daemon.serve -> instant upstream   (POST /rpc/bench)
    naive     quart-trio + shared httpx.AsyncClient -> instant upstream

All three share one instant upstream process. CPU per request is the
target's utime+stime over the measured window divided by the requests
completed in it; for ``direct`` the target is the upstream itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from bench.procs import Child, launched, python_module, run_json
from bench.report import Column, Derived, Options, Row, Section, SectionResult
from bench.report import per_request_us as _us
from bench.report import ratio as _ratio

# bench (issue 13): "echo", the bare hypercorn-trio app, measured in this section's run so
# the summary's "gateway vs echo" ratio compares cells of one run (bench/summary.py).
TARGETS = ("direct", "echo", "gateway", "gateway-quart", "naive")

COLUMNS = (
    Column("target", "target"),
    Column("concurrency", "conc"),
    Column("rps", "req/s", ",.0f"),
    Column("p50_ms", "p50 ms", ".3f"),
    Column("p99_ms", "p99 ms", ".3f"),
    Column("cpu_us", "CPU µs/req", ",.0f"),
    Column("rps_per_cpu_s", "req/CPU-s", ",.0f"),
    Column("cpu_busy_pct", "CPU %", ".0f"),
    Column("upstream_cpu_us", "upstream µs/req", ",.0f"),
    Column("loadgen_cpu_us", "loadgen µs/req", ",.0f"),
    Column("machine_busy_pct", "machine %", ".0f"),
    Column("reconnects", "closes"),
    Column("errors", "errors"),
)


@contextlib.contextmanager
def _target(name: str, upstream: Child) -> Iterator[tuple[Child, str]]:
    url = f"http://127.0.0.1:{upstream.port}/"
    if name == "direct":
        yield upstream, "/"
    elif name == "echo":  # bench (issue 13): the floor of the front-end stack
        with launched(name, python_module("bench.hypercorn_echo")) as child:
            yield child, "/"
    elif name == "gateway":
        with launched(name, python_module("bench.gateway_target", url)) as child:
            yield child, "/rpc/bench"
    elif name == "gateway-quart":
        with launched(name, python_module("bench.gateway_target", url, "quart")) as child:
            yield child, "/rpc/bench"
    else:
        with launched(name, python_module("bench.naive_forwarder", url)) as child:
            yield child, "/"


def _cell(target: str, child: Child, path: str, upstream: Child, conc: int, opts: Options) -> Row:
    argv = python_module(
        "bench.load",
        *("--port", child.port, "--path", path, "-c", conc),
        *("--duration", opts.duration_s, "--warmup", opts.warmup_s),
        *("--watch-pid", child.pid, "--watch-pid", upstream.pid),
    )
    load = run_json(f"load c={conc} -> {target}", argv, opts.duration_s + opts.warmup_s + 30)
    count, cpu_s = load["count"], load["cpu_s"][str(child.pid)]
    cpu_us = _us(cpu_s, count)
    return {
        "target": target,
        "concurrency": conc,
        "rps": load["rps"],
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
        "cpu_us": cpu_us,
        "rps_per_cpu_s": 1e6 / cpu_us if cpu_us else None,
        "cpu_busy_pct": 100 * cpu_s / load["duration_s"],
        "upstream_cpu_us": _us(load["cpu_s"][str(upstream.pid)], count),
        "loadgen_cpu_us": _us(load["loadgen_cpu_s"], count),
        "machine_busy_pct": load["machine_busy_pct"],
        "reconnects": load["reconnects"],
        "errors": load["errors"],
        "error_kinds": load["error_kinds"],
        "count": count,
    }


def _times(name: str, value: float | None) -> Derived:
    return Derived(name, value, "x")


def _ms(name: str, a: Row, b: Row, key: str) -> Derived:
    value = None if a[key] is None or b[key] is None else a[key] - b[key]
    return Derived(name, value, " ms", "+.3f")


def _derived(rows: list[Row], concurrencies: tuple[int, ...]) -> list[Derived]:
    cell = {(r["target"], r["concurrency"]): r for r in rows}
    out = []
    for c in concurrencies:
        gw, naive, direct = cell[("gateway", c)], cell[("naive", c)], cell[("direct", c)]
        out += [
            _times(f"c={c:<2} gateway req/s / naive req/s", _ratio(gw["rps"], naive["rps"])),
            _times(
                f"c={c:<2} naive CPU/req / gateway CPU/req", _ratio(naive["cpu_us"], gw["cpu_us"])
            ),
            _times(
                f"c={c:<2} Quart-route CPU/req / fast-path CPU/req",
                _ratio(cell[("gateway-quart", c)]["cpu_us"], gw["cpu_us"]),
            ),
            _times(  # bench (issue 13): the target is >= 0.9 at c=16
                f"c={c:<2} gateway req/s / echo req/s", _ratio(gw["rps"], cell[("echo", c)]["rps"])
            ),
            _ms(f"c={c:<2} added latency p50 (gateway - direct)", gw, direct, "p50_ms"),
            _ms(f"c={c:<2} added latency p99 (gateway - direct)", gw, direct, "p99_ms"),
        ]
    return out


def run(opts: Options) -> SectionResult:
    return run_targets(TARGETS, _target, _derived, NOTES, opts)


def run_targets(
    targets: tuple[str, ...],
    target: Callable[[str, Child], AbstractContextManager[tuple[Child, str]]],
    derived: Callable[[list[Row], tuple[int, ...]], list[Derived]],
    notes: list[str],
    opts: Options,
) -> SectionResult:
    """Each target in turn behind one instant upstream, loaded at every concurrency."""
    rows: list[Row] = []
    with launched("instant upstream", python_module("bench.instant_upstream")) as upstream:
        for name in targets:
            with target(name, upstream) as (child, path):
                rows += [_cell(name, child, path, upstream, c, opts) for c in opts.concurrencies]
    errors = [
        f"{r['target']} c={r['concurrency']} errors: {r['error_kinds']}"
        for r in rows
        if r["errors"]
    ]
    return SectionResult(rows, derived(rows, opts.concurrencies), errors + notes)


NOTES = [
    "target, upstream and load generator are separate processes on the same cores, so req/s "
    "and latency depend on this machine and whatever else runs on it; CPU µs/req is the "
    "machine-independent figure",
    "CPU µs/req = target utime+stime in the window / requests; req/CPU-s = 1e6 / that, what "
    "one whole core would serve at that cost; CPU % = how busy the target was (100 = one core)",
    "machine % = all cores busy, everything on the machine included (100 = the target was "
    "competing for CPU); closes = server-initiated keep-alive closes (hypercorn's "
    "keep_alive_max_requests: 1000 by default, as the naive forwarder has it; Lasso sets "
    "1,000,000)",
    "the Python load generator costs about as much CPU per request as the instant upstream, "
    "so the 'direct' row is a floor of this harness, not of the network",
]


SECTION = Section("http", "HTTP forwarding against an instant upstream", COLUMNS, run)
