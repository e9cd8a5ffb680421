"""The battle report: what a :class:`battle.results.BattleRun` measured, for people.

- :func:`write_report` writes ``report.json`` (the run itself, msgspec), ``report.md`` and a
  self-contained ``report.html`` (inline CSS and SVG plots, no script, nothing fetched).
- :func:`summary_table` is the same summary table as aligned text, for the terminal.

Modules: :mod:`~battle.report.fmt` (one formatter per kind of value, ``None`` as "no data"),
:mod:`~battle.report.table` (the summary rows), :mod:`~battle.report.details` (the other
sections as rows), :mod:`~battle.report.series` (the plots' data, pure),
:mod:`~battle.report.svg` and :mod:`~battle.report.plots` (matplotlib, Agg, inline SVG),
:mod:`~battle.report.markdown`, :mod:`~battle.report.page` (HTML), :mod:`~battle.report.mask`
(secrets out) and :mod:`~battle.report.write`.
"""

from __future__ import annotations

from battle.report.table import summary_table
from battle.report.write import write_report

__all__ = ["summary_table", "write_report"]
