"""Section ``obscost``: what metrics and the access log cost per request, both on vs both off.

Two gateways run side by side against one instant upstream, both
``bench.gateway_target`` (``lasso.daemon.serve``) with Lasso's log handler writing
into a file, as ``lasso serve`` logs:

    off   ``[metrics] enabled = false``, access log off
    on    metrics on (as shipped) and ``[logging] access_log = true``: one line per call

The load generator (``bench/load.py``, its own process) drives one of them at a time,
``eth_blockNumber`` at c=16, in the order off, on, on, off, off, on, ... (ABBA: a
drift in the machine's load hits both alike), ``ROUNDS`` cells each. Each cell gives
the gateway's CPU µs per request (utime+stime over the window / requests).

The row: cost = (median CPU/req on - median CPU/req off) / median CPU/req on, the share
of a request's CPU that metrics and the access log take (issue 13: <= 5 %). The noise:
the same figure from each adjacent off/on pair, its min and max, and the spread of the
off cells alone (what two identical configurations differ by in this run).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from bench.forwarding import _cell as load_cell
from bench.procs import launched, python_module
from bench.report import Column, Derived, Options, Row, Section, SectionResult, Verdict

ROUNDS = 4  # cells per variant
CONCURRENCY = 16
TARGET_PCT = 5.0
ORDER = ("off", "on", "on", "off")  # repeated: ABBA

COLUMNS = (
    Column("variant", "variant"),
    Column("round", "cell"),
    Column("concurrency", "conc"),
    Column("rps", "req/s", ",.0f"),
    Column("p50_ms", "p50 ms", ".3f"),
    Column("cpu_us", "CPU µs/req", ",.1f"),
    Column("cpu_busy_pct", "CPU %", ".0f"),
    Column("machine_busy_pct", "machine %", ".0f"),
    Column("errors", "errors"),
)


def cost_pct(on: float | None, off: float | None) -> float | None:
    return None if on is None or off is None or not on else (on - off) / on * 100


def run(opts: Options) -> SectionResult:
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="lasso-obscost-") as tmp,
        launched("instant upstream", python_module("bench.instant_upstream")) as upstream,
    ):
        url = f"http://127.0.0.1:{upstream.port}/"
        logs = {v: Path(tmp) / f"{v}.log" for v in ("off", "on")}
        argv = {v: python_module("bench.gateway_target", url, f"obs{v}", logs[v]) for v in logs}
        with (
            launched("gateway obs off", argv["off"]) as off,
            launched("gateway obs on", argv["on"]) as on,
        ):
            children = {"off": off, "on": on}
            for n in range(2 * ROUNDS):
                variant = ORDER[n % len(ORDER)]
                child = children[variant]
                cell = load_cell(f"obs {variant}", child, "/rpc/bench", upstream, CONCURRENCY, opts)
                rows.append({"variant": variant, "round": n + 1, **_pick(cell)})
        log_bytes = {v: p.stat().st_size if p.exists() else 0 for v, p in logs.items()}
    return _result(rows, log_bytes)


def _pick(cell: Row) -> Row:
    keys = ("concurrency", "rps", "p50_ms", "cpu_us", "cpu_busy_pct", "machine_busy_pct")
    return {k: cell[k] for k in (*keys, "errors", "error_kinds", "count")}


def _result(rows: list[Row], log_bytes: dict[str, int]) -> SectionResult:
    cpu = {
        v: [r["cpu_us"] for r in rows if r["variant"] == v and r["cpu_us"]] for v in ("off", "on")
    }
    med = {v: statistics.median(c) if c else None for v, c in cpu.items()}
    cost = cost_pct(med["on"], med["off"])
    pairs = [
        cost_pct(b["cpu_us"], a["cpu_us"])
        if a["variant"] == "off"
        else cost_pct(a["cpu_us"], b["cpu_us"])
        for a, b in zip(rows[::2], rows[1::2], strict=False)
    ]
    pair_costs = [p for p in pairs if p is not None]
    off_spread = (max(cpu["off"]) - min(cpu["off"])) / med["off"] * 100 if med["off"] else None
    errors = sum(r["errors"] for r in rows)
    derived = [
        Derived("CPU µs/req, both off (median)", med["off"], " µs", ",.1f"),
        Derived("CPU µs/req, metrics + access log on (median)", med["on"], " µs", ",.1f"),
        Derived("metrics + access log share of CPU per request", cost, " %", "+.1f"),
        Derived(
            "  the same from each off/on pair: min", min(pair_costs, default=None), " %", "+.1f"
        ),
        Derived(
            "  the same from each off/on pair: max", max(pair_costs, default=None), " %", "+.1f"
        ),
        Derived("  noise: spread of the 'off' cells (max - min) / median", off_spread, " %", ".1f"),
    ]
    notes = [
        f"access log written: {log_bytes['on']:,} bytes with it on, {log_bytes['off']:,} off; "
        f"{ROUNDS} cells per variant at c={CONCURRENCY}, order {'/'.join(ORDER)} repeated",
    ]
    notes += [
        f"{r['variant']} cell {r['round']} errors: {r['error_kinds']}" for r in rows if r["errors"]
    ]
    if log_bytes["on"] == 0:
        notes.append("the access log stayed empty: the 'on' gateway did not log (a harness fault)")
    met = None if cost is None else cost <= TARGET_PCT and errors == 0 and log_bytes["on"] > 0
    verdict = Verdict(
        "metrics_cost",
        cost,
        met,
        shown="n/a"
        if cost is None
        else f"{cost:+.1f} % (pairs {min(pair_costs):+.1f}..{max(pair_costs):+.1f} %)",
    )
    return SectionResult(rows, derived, notes, [verdict])


SECTION = Section(
    "obscost", "Metrics + access log: CPU per request, both on vs both off", COLUMNS, run
)
