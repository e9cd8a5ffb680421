"""The summary table: one row per scenario, rendered as aligned text or as Markdown.

The cells are plain strings built once (:func:`rows`); the terminal (:func:`summary_table`),
``report.md`` and ``report.html`` all show the same cells.
"""

from __future__ import annotations

from collections.abc import Sequence

from battle.report import fmt
from battle.results import BattleRun, FuzzResult, ScenarioResult
from battle.slo import Slos

COLUMNS: tuple[str, ...] = (
    "scenario",
    "result",
    "requests",
    "success",
    "p50",
    "p95",
    "p99",
    "failover",
    "gaps/dups",
    "backfill",
    "head regr.",
    "RYH misses",
    "peak RSS",
    "non-JSON/5xx",
)
#: Columns holding words, aligned left; the rest hold figures, aligned right.
_TEXT_COLUMNS = 2
#: The widest "skipped: why" the terminal shows in a cell; the full reason follows the table.
_TERMINAL_VERDICT_WIDTH = 40


def verdict(result: ScenarioResult) -> str:
    """``pass``, ``BREACH`` or ``skipped: <why>``."""
    if result.skipped is not None:
        return f"skipped: {result.skipped}"
    return "BREACH" if result.breaches else "pass"


def _failover(slos: Slos) -> str:
    missed = slos.failover_missed
    if slos.failover_latency_s is None:
        return f"{missed} missed" if missed else fmt.NO_DATA
    text = fmt.seconds(slos.failover_latency_s)
    return f"{text} ({missed} missed)" if missed else text


def _backfill(slos: Slos) -> str:
    incomplete = slos.backfill_incomplete
    if slos.backfill_s is None:
        return f"{incomplete} incomplete" if incomplete else fmt.NO_DATA
    text = fmt.seconds(slos.backfill_s)
    return f"{text} ({incomplete} incomplete)" if incomplete else text


def _bad_answers(slos: Slos) -> str:
    text = fmt.pair(slos.non_json, slos.http_5xx)
    return f"{text} +{slos.html} html" if slos.html else text


def figures(slos: Slos | None) -> tuple[str, ...]:
    """The figure cells (every column after scenario and result)."""
    if slos is None:
        return (fmt.NOT_RUN,) * (len(COLUMNS) - _TEXT_COLUMNS)
    return (
        str(slos.requests),
        fmt.rate(slos.success_rate),
        fmt.seconds(slos.latency_p50_s),
        fmt.seconds(slos.latency_p95_s),
        fmt.seconds(slos.latency_p99_s),
        _failover(slos),
        fmt.pair(slos.gaps, slos.duplicates),
        _backfill(slos),
        fmt.count(slos.head_regressions),
        fmt.count(slos.read_your_head_misses),
        fmt.mebibytes(slos.peak_rss_bytes),
        _bad_answers(slos),
    )


def row(result: ScenarioResult) -> tuple[str, ...]:
    return (result.name, verdict(result), *figures(result.slos))


def rows(run: BattleRun) -> list[tuple[str, ...]]:
    return [row(result) for result in run.scenarios]


def aligned(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Plain-text columns: words left, figures right, a rule under the header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if i < _TEXT_COLUMNS else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(cells) for cells in body)])


def fuzz_line(fuzz: FuzzResult | None) -> str:
    if fuzz is None:
        return "fuzz: not run"
    if fuzz.skipped is not None:
        return f"fuzz: skipped: {fuzz.skipped}"
    text = (
        f"fuzz: {fuzz.examples} examples over {fuzz.methods} methods (seed {fuzz.seed}), "
        f"{_failures(len(fuzz.failures))}"
    )
    if fuzz.stateful_steps or fuzz.stateful_failures:
        text += f"; stateful: {fuzz.stateful_steps} steps, {_failures(len(fuzz.stateful_failures))}"
    return text


def _failures(n: int) -> str:
    return "1 failure" if n == 1 else f"{n} failures"


def run_verdict(run: BattleRun) -> str:
    return "PASS" if run.passed else "FAIL"


def summary_table(run: BattleRun) -> str:
    """The summary for the terminal: the aligned table, then every breach and skip in full,
    the fuzz result and the verdict."""
    body = [
        (name, fmt.clip(verdict_, _TERMINAL_VERDICT_WIDTH), *rest)
        for name, verdict_, *rest in rows(run)
    ]
    lines = [aligned(COLUMNS, body), ""]
    for result in run.scenarios:
        if result.skipped is not None:
            lines.append(f"{result.name}: skipped: {fmt.clip(result.skipped, 400)}")
        for breach in result.breaches:
            lines.append(f"{result.name}: BREACH {fmt.clip(breach.message, 400)}")
    lines.append(fuzz_line(run.fuzz))
    if run.fuzz is not None:
        lines.extend(
            f"  {f.rule}: {fmt.clip(f.reason, 200)}; {f.replay}" for f in run.fuzz.failures
        )
    lines.append(f"battle {run_verdict(run)} in {run.duration_s:.0f} s")
    # Printable whatever a fuzzed answer held (a lone surrogate cannot reach a UTF-8 terminal).
    return "\n".join(lines).encode("utf-8", "backslashreplace").decode("utf-8")
