"""Writing a run's report files into a directory."""

from __future__ import annotations

from pathlib import Path

import msgspec

from battle.report import markdown, page
from battle.report.mask import masked
from battle.results import BattleRun


def write_report(run: BattleRun, directory: Path) -> list[Path]:
    """Write ``report.json`` (the whole run, recordings included, decodable with
    ``msgspec.json.decode(data, type=BattleRun)``), ``report.md`` and ``report.html`` into
    ``directory`` (created if missing); return their paths in that order.

    Every URL is masked again first (:func:`battle.report.mask.masked`).
    """
    run = masked(run)
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        _write(directory / "report.json", msgspec.json.encode(run)),
        _write(directory / "report.md", _text(markdown.render(run))),
        _write(directory / "report.html", _text(page.render(run))),
    ]
    return written


def _text(text: str) -> bytes:
    # A lone surrogate from a fuzzed answer cannot be UTF-8; show it as an escape.
    return text.encode("utf-8", errors="backslashreplace")


def _write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
