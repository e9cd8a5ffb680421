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
    run = _encodable(masked(run))
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        _write(directory / "report.json", msgspec.json.encode(run)),
        _write(directory / "report.md", _text(markdown.render(run))),
        _write(directory / "report.html", _text(page.render(run))),
    ]
    return written


def _encodable(run: BattleRun) -> BattleRun:
    """``run`` itself when it encodes; else with every lone surrogate shown as an escape.

    The fuzz phase keeps a body that is not UTF-8 as ``surrogateescape`` text (so it can be
    replayed byte for byte); such a string cannot be JSON. Its bytes are shown as ``\\xNN``.
    """
    try:
        msgspec.json.encode(run)
    except UnicodeEncodeError:
        return msgspec.convert(_clean(msgspec.to_builtins(run)), BattleRun)
    return run


def _clean(value: object) -> object:
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is no escaped byte
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    return value


def _text(text: str) -> bytes:
    # A lone surrogate from a fuzzed answer cannot be UTF-8; show it as an escape.
    return text.encode("utf-8", errors="backslashreplace")


def _write(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
