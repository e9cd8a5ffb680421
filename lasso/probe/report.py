"""What ``lasso probe`` measured, as records, a plain-text table and a TOML snippet.

Pure: the records are filled in by :mod:`lasso.probe.run`; :func:`render_table` and
:func:`render_toml` only format them. The TOML snippet has one
``[[chains.<name>.providers]]`` table per provider that answered, with its ``id`` and
the capability keys measured (``archival``, ``unsupported_methods``,
``max_logs_block_range``, ``supports_batch``, ``subscriptions``) and comment lines
saying what each value rests on. Pasted over (merged into) the provider's entry in
settings.toml it loads with Lasso's own config loader.
"""

from __future__ import annotations

import re

import msgspec

from lasso.config import DEFAULT_PROFILE
from lasso.core.probe_methods import Verdict

__all__ = [
    "ArchivalOutcome",
    "LogsOutcome",
    "MethodOutcome",
    "ProviderReport",
    "render_table",
    "render_toml",
]


class MethodOutcome(msgspec.Struct, frozen=True):
    method: str
    verdict: Verdict
    detail: str = ""


class ArchivalOutcome(msgspec.Struct, frozen=True):
    """``full``: block 1 (0 at head 0) is served; else ``earliest`` is the earliest
    block whose state is served (None: unknown, see ``detail``), and ``head`` the
    node's head when the search ended (a pruned window moves with the chain)."""

    head: int
    full: bool | None = None
    earliest: int | None = None
    probes: int = 0
    detail: str = ""


class LogsOutcome(msgspec.Struct, frozen=True):
    """``limit``: the widest ``eth_getLogs`` span in blocks the node accepted
    (``named`` when its refusal stated it); ``unlimited``: ``bound`` blocks accepted."""

    bound: int
    limit: int | None = None
    unlimited: bool = False
    named: bool = False
    probes: int = 0
    detail: str = ""


class ProviderReport(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str  # masked
    answered: bool
    error: str = ""
    chain_id: int | None = None
    client: str = ""
    head: int | None = None
    methods: tuple[MethodOutcome, ...] = ()
    archival: ArchivalOutcome | None = None
    logs: LogsOutcome | None = None
    batch: bool | None = None
    batch_detail: str = ""
    subscriptions: bool | None = None
    subscriptions_detail: str = ""
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def unsupported(self) -> list[str]:
        return [m.method for m in self.methods if m.verdict is Verdict.UNSUPPORTED]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for m in self.methods if m.verdict is verdict)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _join(lines: list[str]) -> str:
    """One line per element, whatever a provider put in its answers: a line break in a
    client version or an error message must not start a TOML key (or move a terminal's
    cursor), so every control character becomes a space."""
    return "\n".join(_CONTROL.sub(" ", line) for line in lines)


# --- the table ---------------------------------------------------------------------


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def archival_cell(archival: ArchivalOutcome | None) -> str:
    if archival is None:
        return "?"
    if archival.full:
        return "full"
    if archival.earliest is None:
        return "?"
    return f"from {archival.earliest} (keeps {archival.head - archival.earliest})"


def logs_cell(logs: LogsOutcome | None) -> str:
    if logs is None:
        return "?"
    if logs.unlimited:
        return f"none <= {logs.bound}"
    if logs.limit is None:
        return "?"
    return f"{logs.limit}" + (" (stated)" if logs.named else "")


def _subscriptions_cell(report: ProviderReport) -> str:
    if report.subscriptions is None and report.subscriptions_detail == "no ws_url":
        return "no ws"
    return _yes_no(report.subscriptions)


def _align(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render_table(chain: str, profile: str, reports: list[ProviderReport], elapsed_s: float) -> str:
    """The summary (one row per provider), the method matrix, and what went wrong."""
    where = "" if profile == DEFAULT_PROFILE else f" (profile {profile})"
    lines = [f"lasso probe {chain}{where}: {len(reports)} providers in {elapsed_s:.2f} s", ""]
    header = ["provider", "head", "archival", "logs range", "batch", "subscribe", "methods", "time"]
    rows = [header]
    for r in reports:
        if not r.answered:
            rows.append([r.id, "-", "no answer", "", "", "", "", f"{r.elapsed_s:.2f}s"])
            continue
        methods = f"{r.count(Verdict.SUPPORTED)}/{len(r.methods)}"
        rows.append(
            [
                r.id,
                str(r.head),
                archival_cell(r.archival),
                logs_cell(r.logs),
                _yes_no(r.batch),
                _subscriptions_cell(r),
                methods,
                f"{r.elapsed_s:.2f}s",
            ]
        )
    lines += _align(rows)
    answered = [r for r in reports if r.answered]
    if answered:
        lines += ["", *_method_matrix(answered)]
    lines += _findings(reports)
    return _join(lines)


def _method_matrix(reports: list[ProviderReport]) -> list[str]:
    names = [m.method for m in reports[0].methods]
    verdicts = [{m.method: m.verdict.value for m in r.methods} for r in reports]
    rows = [["method", *(r.id for r in reports)]]
    rows += [[name, *(v.get(name, "-") for v in verdicts)] for name in names]
    return _align(rows)


def _findings(reports: list[ProviderReport]) -> list[str]:
    lines: list[str] = []
    for r in reports:
        found = [f"client: {r.client}"] if r.client else []
        if not r.answered:
            lines += [f"{r.id}:", f"  no answer: {r.error}"]
            continue
        if r.unsupported:
            found.append("unsupported: " + ", ".join(r.unsupported))
        unknown = [m for m in r.methods if m.verdict is Verdict.UNKNOWN]
        found += [f"{m.method}: unknown ({m.detail})" for m in unknown]
        if r.archival is not None and r.archival.detail:
            found.append(f"archival: {r.archival.detail}")
        if r.logs is not None and r.logs.detail:
            found.append(f"logs range: {r.logs.detail}")
        if r.batch is not True and r.batch_detail:
            found.append(f"batch: {r.batch_detail}")
        if r.subscriptions is not True and r.subscriptions_detail not in ("", "no ws_url"):
            found.append(f"subscribe: {r.subscriptions_detail}")
        found += list(r.notes)
        if found:
            lines += [f"{r.id}:", *(f"  {line}" for line in found)]
    return ["", *lines] if lines else []


# --- the TOML snippet ----------------------------------------------------------------


def _toml_string(text: str) -> str:
    return msgspec.json.encode(text).decode()  # a JSON string is a TOML basic string


def _toml_bool(value: bool) -> str:
    return "true" if value else "false"


def providers_table(chain: str, profile: str) -> str:
    prefix = "" if profile == DEFAULT_PROFILE else f"profiles.{profile}."
    return f"[[{prefix}chains.{chain}.providers]]"


def render_toml(chain: str, profile: str, reports: list[ProviderReport], measured_at: str) -> str:
    """The capability keys per provider, to merge into settings.toml by ``id``."""
    lines = [
        f"# lasso probe {chain}: capabilities measured {measured_at}.",
        "# Merge each table into the provider entry with the same id in settings.toml",
        "# (keep its url, ws_url, priority and the rest).",
    ]
    for report in reports:
        lines.append("")
        if not report.answered:
            lines.append(f"# {report.id}: no answer ({report.error}); nothing measured")
            continue
        lines += _provider_toml(chain, profile, report)
    return _join(lines) + "\n"


def _provider_toml(chain: str, profile: str, r: ProviderReport) -> list[str]:
    lines = [providers_table(chain, profile), f"id = {_toml_string(r.id)}"]
    if r.client:
        lines.append(f"# client: {r.client}")
    lines += _archival_toml(r.archival)
    unsupported = ", ".join(_toml_string(m) for m in r.unsupported)
    counts = [r.count(v) for v in (Verdict.SUPPORTED, Verdict.UNSUPPORTED, Verdict.UNKNOWN)]
    lines.append(
        f"# {len(r.methods)} methods probed: {counts[0]} supported, {counts[1]} unsupported"
        + (f", {counts[2]} unknown (not listed)" if counts[2] else "")
    )
    lines.append(f"unsupported_methods = [{unsupported}]")
    lines += _logs_toml(r.logs)
    if r.batch is None:
        lines.append(f"# supports_batch not measured: {r.batch_detail}")
    else:
        lines.append(f"supports_batch = {_toml_bool(r.batch)}")
    if r.subscriptions is None:
        lines.append(f"# subscriptions not measured: {r.subscriptions_detail}")
    else:
        lines.append("# eth_subscribe newHeads over ws_url")
        lines.append(f"subscriptions = {_toml_bool(r.subscriptions)}")
    return lines


def _archival_toml(archival: ArchivalOutcome | None) -> list[str]:
    if archival is None or (archival.full is None and archival.earliest is None):
        detail = "" if archival is None else archival.detail
        return [f"# archival not measured: {detail or 'no answer'}"]
    if archival.full:
        return [
            f"# full history: state served back to block {archival.earliest} "
            f"(head {archival.head})",
            "archival = true",
        ]
    return [
        f"# earliest state block {archival.earliest} (head {archival.head}: "
        f"keeps {archival.head - (archival.earliest or 0)} blocks of state)",
        "archival = false",
    ]


def _logs_toml(logs: LogsOutcome | None) -> list[str]:
    if logs is None:
        return ["# max_logs_block_range not measured"]
    if logs.unlimited:
        return [f"# eth_getLogs: {logs.bound} blocks accepted (the probe's bound); no limit set"]
    if logs.limit is None:
        return [f"# max_logs_block_range not measured: {logs.detail or 'unknown'}"]
    how = "stated by the node's refusal" if logs.named else "widest span accepted"
    return [f"# eth_getLogs: {logs.limit} blocks ({how})", f"max_logs_block_range = {logs.limit}"]
