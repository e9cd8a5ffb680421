"""The one summary table: every target of issue 13 beside what this run measured.

Each :class:`Target` names the section that measures it and a judge that reads that
section's :class:`~bench.report.SectionResult` (its rows, or the :class:`Verdict` a
section gives itself) and returns the measured value and whether the target is met.
A target whose section was not run (``--only``) is ``not run``; one whose section
failed is ``failed``; one the section could not measure (no such cell) is ``n/a``.
All ratios are computed from cells of the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report import Column, Row, SectionResult, Verdict, render_table

Judged = tuple[float | None, str, bool | None]  # (value, shown, met)


@dataclass(frozen=True)
class Target:
    key: str
    section: str
    what: str
    target: str
    judge: Callable[[SectionResult], Judged]


def _cell(result: SectionResult, **match: Any) -> Row | None:
    for row in result.rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _ratio_of(
    key: str, a: dict[str, Any], b: dict[str, Any], at_least: float
) -> Callable[[SectionResult], Judged]:
    def judge(result: SectionResult) -> Judged:
        x, y = _cell(result, **a), _cell(result, **b)
        if x is None or y is None or x.get(key) is None or not y.get(key):
            return None, "n/a", None
        value = x[key] / y[key]
        return value, f"{value:.2f}x", value >= at_least

    return judge


def _added_ms(
    key: str, a: dict[str, Any], b: dict[str, Any], at_most: float
) -> Callable[[SectionResult], Judged]:
    def judge(result: SectionResult) -> Judged:
        x, y = _cell(result, **a), _cell(result, **b)
        if x is None or y is None or x.get(key) is None or y.get(key) is None:
            return None, "n/a", None
        value = x[key] - y[key]
        return value, f"+{value:.3f} ms" if value >= 0 else f"{value:.3f} ms", value <= at_most

    return judge


def _verdict(key: str) -> Callable[[SectionResult], Judged]:
    def judge(result: SectionResult) -> Judged:
        found: Verdict | None = next((v for v in result.verdicts if v.key == key), None)
        if found is None:
            return None, "n/a", None
        shown = found.shown or ("n/a" if found.measured is None else f"{found.measured:g}")
        return found.measured, shown, found.met

    return judge


def _largest_fanout(result: SectionResult) -> Row | None:
    rows = [r for r in result.rows if r.get("clients")]
    return max(rows, key=lambda r: r["clients"]) if rows else None


def _fanout_p99(result: SectionResult) -> Judged:
    """The p99 over heads of the time from the upstream frame to the LAST client's receipt
    (``last_p99_ms``): the issue's wording; the p99 over every delivery is shown beside it."""
    row = _largest_fanout(result)
    if row is None or row.get("last_p99_ms") is None:
        return None, "n/a", None
    value, n = row["last_p99_ms"], row["clients"]
    shown = f"{value:,.0f} ms (all deliveries p99 {row.get('p99_ms') or 0:,.0f})" + (
        "" if n == 10_000 else f" (at {n:,} clients)"
    )
    return value, shown, value <= 100 and n >= 10_000


def _fanout_delivered(result: SectionResult) -> Judged:
    row = _largest_fanout(result)
    if row is None:
        return None, "n/a", None
    delivered, expected, n = row["delivered"], row["expected"], row["clients"]
    complete = delivered == expected and row.get("subscribed") == n and not row.get("lost")
    shown = f"{delivered:,} / {expected:,}" + (
        "" if row.get("subscribed") == n else f" ({row.get('subscribed')} of {n:,} subscribed)"
    )
    return delivered, shown, complete and n >= 10_000


def _idle_ws(result: SectionResult) -> Judged:
    row = _largest_fanout(result)
    if row is None or row.get("rss_per_client_kb") is None:
        return None, "n/a", None
    value = row["rss_per_client_kb"]
    return value, f"{value:.1f} KiB", value <= 30


C16, C1 = {"concurrency": 16}, {"concurrency": 1}

TARGETS: list[Target] = [
    Target(
        "http_vs_naive",
        "http",
        "HTTP c=16, 1 worker: req/s vs naive",
        ">= 4.5x",
        _ratio_of("rps", {"target": "gateway", **C16}, {"target": "naive", **C16}, 4.5),
    ),
    Target(
        "http_vs_echo",
        "http",
        "HTTP c=16, 1 worker: req/s vs bare hypercorn-trio echo",
        ">= 0.90x",
        _ratio_of("rps", {"target": "gateway", **C16}, {"target": "echo", **C16}, 0.9),
    ),
    Target(
        "added_p50",
        "http",
        "added latency over direct, c=1, p50",
        "<= 0.30 ms",
        _added_ms("p50_ms", {"target": "gateway", **C1}, {"target": "direct", **C1}, 0.30),
    ),
    Target(
        "added_p99",
        "http",
        "added latency over direct, c=1, p99",
        "<= 1.0 ms",
        _added_ms("p99_ms", {"target": "gateway", **C1}, {"target": "direct", **C1}, 1.0),
    ),
    Target(
        "cache_vs_echo",
        "cache",
        "cache hit c=16: req/s vs bare echo",
        ">= 1.0x",
        _ratio_of("rps", {"target": "hit", **C16}, {"target": "echo", **C16}, 1.0),
    ),
    Target(
        "cache_p50",
        "cache",
        "cache hit c=1: p50 added over direct",
        "<= 0.15 ms",
        _added_ms("p50_ms", {"target": "hit", **C1}, {"target": "direct", **C1}, 0.15),
    ),
    Target(
        "workers",
        "workers",
        "2 workers vs 1, c=16 req/s",
        ">= 1.8x",
        _ratio_of("rps", {"workers": 2, **C16}, {"workers": 1, **C16}, 1.8),
    ),
    Target(
        "biglogs_p50",
        "biglogs",
        "5 MB eth_getLogs: added p50 over direct",
        "<= 15 ms",
        _verdict("biglogs_p50"),
    ),
    Target(
        "fanout_p99",
        "fanout",
        "newHeads fan-out 10k, 1 worker: p99 frame -> last client",
        "<= 100 ms",
        _fanout_p99,
    ),
    Target(
        "fanout_delivered",
        "fanout",
        "newHeads fan-out 10k: delivered / expected",
        "every head, every client",
        _fanout_delivered,
    ),
    Target("idle_ws", "fanout", "memory per idle subscribed WS client", "<= 30 KiB", _idle_ws),
    Target(
        "metrics_cost",
        "obscost",
        "metrics + access log: share of CPU per request",
        "<= 5 %",
        _verdict("metrics_cost"),
    ),
    Target(
        "soak",
        "soak",
        "soak (RSS, leaks, errors, every head)",
        "RSS < +10 %, 0 leaks, 0 errors",
        _verdict("soak"),
    ),
]

COLUMNS = (
    Column("what", "target row"),
    Column("target", "target", left=True),
    Column("measured", "measured", left=True),
    Column("verdict", "verdict"),
)


def summarize(results: dict[str, SectionResult], failed: dict[str, str]) -> list[Row]:
    """One row per target: what, target, measured (as shown), value, verdict."""
    rows = []
    for t in TARGETS:
        value: float | None = None
        if t.section in failed:
            shown, verdict = "-", "failed"
        elif t.section not in results:
            shown, verdict = "-", "not run"
        else:
            value, shown, met = t.judge(results[t.section])
            verdict = "n/a" if met is None else ("met" if met else "NOT met")
        rows.append(
            {
                "key": t.key,
                "section": t.section,
                "what": t.what,
                "target": t.target,
                "measured": shown,
                "value": value,
                "verdict": verdict,
            }
        )
    return rows


def render_summary(rows: list[Row]) -> str:
    met = sum(r["verdict"] == "met" for r in rows)
    judged = sum(r["verdict"] in ("met", "NOT met") for r in rows)
    return (
        "== Issue 13 targets: this run ==\n"
        + render_table(COLUMNS, rows)
        + f"\n\n  {met} of {judged} measured targets met; {len(rows) - judged} not measured "
        "in this run\n"
    )
