"""Section ``biglogs``: a 5 MB ``eth_getLogs`` answer, direct and through the gateway.

One upstream process, :mod:`bench.bigresult_upstream`, answers every ``eth_getLogs``
at once with the same ~5 MB result. The load generator (:mod:`bench.load` with ``--body``, its
own process) sends ``eth_getLogs`` for a 16-block range below the head at c=1:

    direct    straight at the upstream: the floor (its own cost: a 5 MB send)
    gateway   bench.gateway_target (lasso.daemon.serve, metrics on) -> that upstream

Each target is measured ``ROUNDS`` times, alternated (direct, gateway, direct, ...),
so a burst of other work on the machine hits both. Figures: p50 and p99 per target
(median over the rounds), the p50 and p99 the gateway adds, and the gateway's CPU per
request. One more check, before the load: the gateway's answer is byte for byte the
upstream's (the result passed through, no decode or re-encode).

Issue 13's target: <= 15 ms added at p50.
"""

from __future__ import annotations

import json
import statistics
import urllib.request

from bench.procs import Child, launched, python_module, run_json
from bench.report import Column, Derived, Options, Row, Section, SectionResult, Verdict
from bench.report import per_request_us as _us

ROUNDS = 2
TARGET_MS = 15.0
PATH = "/rpc/bench"
BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "eth_getLogs",
        "params": [{"fromBlock": "0x121eab1", "toBlock": "0x121eac0"}],
    },
    separators=(",", ":"),
)

COLUMNS = (
    Column("target", "target"),
    Column("round", "round"),
    Column("concurrency", "conc"),
    Column("rps", "req/s", ",.1f"),
    Column("p50_ms", "p50 ms", ".2f"),
    Column("p99_ms", "p99 ms", ".2f"),
    Column("cpu_us", "CPU µs/req", ",.0f"),
    Column("upstream_cpu_us", "upstream µs/req", ",.0f"),
    Column("machine_busy_pct", "machine %", ".0f"),
    Column("errors", "errors"),
)


def _post(port: int, path: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=BODY.encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        data: bytes = answer.read()
        return data


def _cell(name: str, n: int, child: Child, path: str, upstream: Child, opts: Options) -> Row:
    argv = python_module(
        "bench.load",
        *("--port", child.port, "--path", path, "--body", BODY, "-c", 1),
        *("--duration", opts.duration_s, "--warmup", opts.warmup_s),
        *("--watch-pid", child.pid, "--watch-pid", upstream.pid),
    )
    load = run_json(f"biglogs -> {name}", argv, opts.duration_s + opts.warmup_s + 60)
    count = load["count"]
    return {
        "target": name,
        "round": n + 1,
        "concurrency": 1,
        "rps": load["rps"],
        "p50_ms": load["p50_ms"],
        "p99_ms": load["p99_ms"],
        "cpu_us": _us(load["cpu_s"][str(child.pid)], count),
        "upstream_cpu_us": _us(load["cpu_s"][str(upstream.pid)], count),
        "machine_busy_pct": load["machine_busy_pct"],
        "errors": load["errors"],
        "error_kinds": load["error_kinds"],
        "count": count,
    }


def _median(rows: list[Row], target: str, key: str) -> float | None:
    values = [r[key] for r in rows if r["target"] == target and r.get(key) is not None]
    return statistics.median(values) if values else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def run(opts: Options) -> SectionResult:
    rows: list[Row] = []
    notes: list[str] = []
    with launched("biglogs upstream", python_module("bench.bigresult_upstream")) as upstream:
        url = f"http://127.0.0.1:{upstream.port}/"
        with launched("gateway", python_module("bench.gateway_target", url)) as gateway:
            direct_bytes, via_bytes = _post(upstream.port, "/"), _post(gateway.port, PATH)
            identical = direct_bytes == via_bytes
            size = len(direct_bytes)
            for n in range(ROUNDS):
                rows.append(_cell("direct", n, upstream, "/", upstream, opts))
                rows.append(_cell("gateway", n, gateway, PATH, upstream, opts))
    p50 = {t: _median(rows, t, "p50_ms") for t in ("direct", "gateway")}
    p99 = {t: _median(rows, t, "p99_ms") for t in ("direct", "gateway")}
    added_p50, added_p99 = (
        _minus(p50["gateway"], p50["direct"]),
        _minus(p99["gateway"], p99["direct"]),
    )
    gateway_cpu = _median(rows, "gateway", "cpu_us")
    errors = sum(r["errors"] for r in rows)
    derived = [
        Derived("answer size", size / 1e6, " MB", ".2f"),
        Derived("gateway answer byte-identical to the upstream's", float(identical), "", ".0f"),
        Derived("added latency p50 (gateway - direct, median of rounds)", added_p50, " ms", "+.2f"),
        Derived("added latency p99 (gateway - direct, median of rounds)", added_p99, " ms", "+.2f"),
        Derived("gateway CPU per 5 MB request (median of rounds)", gateway_cpu, " µs", ",.0f"),
    ]
    if not identical:
        notes.append(
            f"the gateway's answer differs from the upstream's ({len(via_bytes):,} bytes vs "
            f"{size:,}): the result was not passed through untouched"
        )
    notes += [
        f"{r['target']} round {r['round']} errors: {r['error_kinds']}" for r in rows if r["errors"]
    ]
    notes.append(
        f"{ROUNDS} alternated rounds per target, c=1, {opts.duration_s:g} s each after "
        f"{opts.warmup_s:g} s warm-up; the load generator reads every byte of each answer"
    )
    met = added_p50 is not None and added_p50 <= TARGET_MS and identical and errors == 0
    verdict = Verdict(
        "biglogs_p50",
        added_p50,
        met if added_p50 is not None else None,
        shown="n/a"
        if added_p50 is None
        else f"+{added_p50:.2f} ms" + ("" if identical else " (bytes differ)"),
    )
    return SectionResult(rows, derived, notes, [verdict])


SECTION = Section("biglogs", "5 MB eth_getLogs passed through (c=1)", COLUMNS, run)
