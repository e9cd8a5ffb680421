"""``report.md``: provenance, the summary table, the fuzz result, each scenario's thresholds
against the measured values, and the masked config.

Text from the run sits in table cells (pipes, newlines and angle brackets escaped, so a
provider's answer cannot close a cell or inject HTML into a rendered view) or in fenced code
blocks whose fence is longer than any backtick run inside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from battle.report import details, table
from battle.results import BattleRun, FuzzResult, ScenarioResult

_TICKS = re.compile(r"`+")


def cell(text: str) -> str:
    text = " ".join(text.split())
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(raw, safe)
    return text


def grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fenced(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in _TICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _summary(run: BattleRun) -> list[str]:
    out = ["## Summary", "", grid(table.COLUMNS, table.rows(run)), ""]
    for result in run.scenarios:
        out += [f"- **{cell(result.name)}**: BREACH {cell(b.message)}" for b in result.breaches]
        if result.skipped is not None:
            out.append(f"- **{cell(result.name)}**: skipped: {cell(result.skipped)}")
    return [*out, ""]


def _fuzz(fuzz: FuzzResult | None) -> list[str]:
    out = ["## Fuzz", "", cell(table.fuzz_line(fuzz)), ""]
    if fuzz is None or fuzz.skipped is not None:
        return out
    out += [f"Took {fuzz.duration_s:.1f} s.", ""]
    for n, failure in enumerate(fuzz.failures, 1):
        out += [
            f"### Fuzz failure {n}: {cell(failure.rule)}",
            "",
            cell(failure.reason),
            "",
            f"Saved as {cell(failure.saved_as)}; replay with:",
            "",
            fenced(failure.replay, "sh"),
            "",
            "Request:",
            "",
            fenced(failure.request, "json"),
            "",
            "The node answered:",
            "",
            fenced(failure.node_answer, "json"),
            "",
            "Lasso answered:",
            "",
            fenced(failure.lasso_answer, "json"),
            "",
        ]
    if fuzz.stateful_failures:
        out += ["### Stateful failures", ""]
        out += [fenced(text) + "\n" for text in fuzz.stateful_failures]
    return out


def _scenario(result: ScenarioResult) -> list[str]:
    out = [
        f"### {cell(result.name)}: {cell(table.verdict(result))}",
        "",
        cell(result.summary),
        "",
        cell(details.facts(result)),
        "",
    ]
    rows = details.thresholds(result)
    if rows:
        out += [grid(details.THRESHOLD_HEADER, rows), ""]
    slo_rows = details.slos(result)
    if slo_rows:
        out += ["<details><summary>Every SLO</summary>", "", grid(details.SLO_HEADER, slo_rows)]
        out += ["", "</details>", ""]
    stream_rows = details.streams(result)
    if stream_rows:
        out += ["Subscriptions:", "", grid(details.STREAM_HEADER, stream_rows), ""]
    chaos_rows = details.chaos(result)
    if chaos_rows:
        out += ["Chaos events:", "", grid(details.CHAOS_HEADER, chaos_rows), ""]
    return out


def render(run: BattleRun) -> str:
    p = run.provenance
    out = [
        f"# Lasso battle report: {table.run_verdict(run)}",
        "",
        f"Chain {cell(p.chain)} on target {cell(p.target)}, seed {p.seed}, "
        f"started {cell(p.started_at_utc)}.",
        "",
        "## Provenance",
        "",
        grid(details.PROVENANCE_HEADER, details.provenance(run)),
        "",
        "Providers:",
        "",
        grid(details.PROVIDER_HEADER, details.providers(run)),
        "",
        "Run it again:",
        "",
        fenced(p.command, "sh"),
        "",
        *_summary(run),
        *_fuzz(run.fuzz),
        "## Scenarios",
        "",
    ]
    for result in run.scenarios:
        out += _scenario(result)
    out += ["## Config (secrets masked)", "", fenced(p.config_masked, "toml"), ""]
    return "\n".join(out)
