"""What a benchmark section is, and how its results are printed and saved.

A :class:`Section` is a name, a title, the columns of its table and a
function from :class:`Options` to a :class:`SectionResult`: rows (one dict
per measured cell), derived figures computed from those rows in the same run
(ratios, differences), and notes. Adding a section means writing one such
function and listing it in ``bench/__main__.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Options:
    duration_s: float = 4.0
    warmup_s: float = 1.0
    concurrencies: tuple[int, ...] = (1, 16)
    fanout_sizes: tuple[int, ...] = (1_000, 10_000)  # client subscriptions per fan-out cell
    fanout_heads: int = 5  # heads emitted per fan-out cell, one at a time
    fanout_workers: int = 2  # client processes per fan-out cell (more if RLIMIT_NOFILE is low)
    soak_duration_s: float = 120.0  # the soak's paced-load phase (3600 for the hour)
    soak_clients: int = 50  # WebSocket newHeads subscribers open throughout the soak
    soak_fault: str | None = None  # a breach to inject: "leak" or "outage" (must then fail)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    fmt: str = ""  # a format spec for numbers, e.g. ",.0f"
    left: bool = False  # text: aligned left (numbers are aligned right)


@dataclass(frozen=True)
class Derived:
    name: str
    value: float | None
    unit: str = ""
    fmt: str = ".2f"

    def render(self) -> str:
        shown = "n/a" if self.value is None else format(self.value, self.fmt)
        return f"{self.name}: {shown}{self.unit}"


@dataclass(frozen=True)
class Verdict:
    """One target row of the summary table, as a section measured it (bench/summary.py)."""

    key: str  # the summary row's key
    measured: float | None  # None: not measured (the cell failed or had no data)
    met: bool | None  # None with a value: measured, but the criterion could not be judged
    shown: str = ""  # the measured value as printed, when a bare number says too little


@dataclass
class SectionResult:
    rows: list[Row]
    derived: list[Derived] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)  # a section's own record, for the JSON


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    columns: Sequence[Column]
    run: Callable[[Options], SectionResult]


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def per_request_us(cpu_s: float, count: int) -> float | None:
    return cpu_s / count * 1e6 if count else None


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float) and not isinstance(value, bool) and fmt:
        return format(value, fmt)
    return str(value)


def render_table(columns: Sequence[Column], rows: Sequence[Row]) -> str:
    cells = [[c.header for c in columns]]
    cells += [[_cell(row.get(c.key), c.fmt) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for n, line in enumerate(cells):
        parts = [line[0].ljust(widths[0])]
        parts += [
            text.ljust(width) if column.left else text.rjust(width)
            for text, width, column in zip(line[1:], widths[1:], columns[1:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_section(section: Section, result: SectionResult) -> str:
    out = [f"== {section.title} ({section.name}) ==", render_table(section.columns, result.rows)]
    if result.derived:
        out.append("")
        out.extend(f"  {d.render()}" for d in result.derived)
    if result.notes:
        out.append("")
        out.extend(f"  note: {n}" for n in result.notes)
    return "\n".join(out) + "\n"


def save_json(
    path: Path,
    meta: dict[str, Any],
    results: dict[str, SectionResult],
    summary: list[Row] | None = None,
    failed: dict[str, str] | None = None,
) -> None:
    doc = {
        "meta": meta,
        "summary": summary or [],
        "failed": failed or {},
        "sections": {name: asdict(r) for name, r in results.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
