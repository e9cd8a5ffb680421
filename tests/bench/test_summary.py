"""The summary table: each target judged from its section's cells, and what is not run."""

from __future__ import annotations

from bench.report import SectionResult, Verdict
from bench.summary import TARGETS, render_summary, summarize


def _http(gateway_rps: float, naive_rps: float, echo_rps: float) -> SectionResult:
    rows = []
    for conc, p50, p99 in ((1, 0.10, 0.30), (16, 1.0, 3.0)):
        rows += [
            {"target": "direct", "concurrency": conc, "rps": 9000.0, "p50_ms": p50, "p99_ms": p99},
            {"target": "echo", "concurrency": conc, "rps": echo_rps},
            {"target": "naive", "concurrency": conc, "rps": naive_rps},
            {
                "target": "gateway",
                "concurrency": conc,
                "rps": gateway_rps,
                "p50_ms": p50 + 0.25,
                "p99_ms": p99 + 1.5,
            },
        ]
    return SectionResult(rows)


def _by_key(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {r["key"]: r for r in rows}


def test_every_issue_row_is_listed_once() -> None:
    keys = [t.key for t in TARGETS]
    assert len(keys) == len(set(keys)) == 13


def test_rows_are_judged_from_cells_of_the_same_run() -> None:
    rows = _by_key(summarize({"http": _http(1000.0, 200.0, 1200.0)}, {}))
    assert rows["http_vs_naive"]["verdict"] == "met"  # 5.0x >= 4.5x
    assert rows["http_vs_naive"]["measured"] == "5.00x"
    assert rows["http_vs_echo"]["verdict"] == "NOT met"  # 0.83 < 0.9
    assert rows["added_p50"]["verdict"] == "met"  # +0.25 ms
    assert rows["added_p99"]["verdict"] == "NOT met"  # +1.5 ms
    assert rows["cache_vs_echo"]["verdict"] == "not run"
    assert rows["soak"]["verdict"] == "not run"


def test_a_failed_section_and_a_missing_cell_are_said_so() -> None:
    rows = _by_key(summarize({"cache": SectionResult([])}, {"http": "RuntimeError: boom"}))
    assert rows["http_vs_naive"]["verdict"] == "failed"
    assert rows["cache_vs_echo"]["verdict"] == "n/a"


def test_a_section_verdict_is_used_as_given() -> None:
    soak = SectionResult([], verdicts=[Verdict("soak", None, False, shown="tasks +3")])
    rows = _by_key(summarize({"soak": soak}, {}))
    assert rows["soak"]["verdict"] == "NOT met"
    assert rows["soak"]["measured"] == "tasks +3"


def test_fanout_rows_come_from_the_largest_cell() -> None:
    fanout = SectionResult(
        [
            {
                "clients": 1000,
                "p99_ms": 5.0,
                "last_p99_ms": 6.0,
                "delivered": 5000,
                "expected": 5000,
            },
            {
                "clients": 10_000,
                "subscribed": 10_000,
                "p99_ms": 60.0,
                "last_p99_ms": 80.0,
                "delivered": 50_000,
                "expected": 50_000,
                "lost": 0,
                "rss_per_client_kb": 31.5,
            },
        ]
    )
    rows = _by_key(summarize({"fanout": fanout}, {}))
    assert rows["fanout_p99"]["verdict"] == "met"
    fanout.rows[1]["last_p99_ms"] = 120.0  # the last client, not every delivery, is judged
    assert _by_key(summarize({"fanout": fanout}, {}))["fanout_p99"]["verdict"] == "NOT met"
    assert rows["fanout_delivered"]["verdict"] == "met"
    assert rows["idle_ws"]["verdict"] == "NOT met"


def test_the_table_says_how_many_targets_were_met() -> None:
    text = render_summary(summarize({"http": _http(1000.0, 200.0, 1200.0)}, {}))
    assert "2 of 4 measured targets met" in text
    assert "not run" in text
