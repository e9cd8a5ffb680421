"""The report's sections as rows of strings, shared by ``report.md`` and ``report.html``.

Every value from the run is returned as is (unescaped); each renderer escapes for its format.
"""

from __future__ import annotations

from battle.report import fmt, series
from battle.results import BattleRun, ScenarioResult
from battle.slo import Slos

Rows = list[tuple[str, ...]]


PROVENANCE_HEADER = ("what", "value")


def provenance(run: BattleRun) -> Rows:
    p = run.provenance
    return [
        ("Lasso version", p.lasso_version),
        ("git commit", p.git_commit or "unknown"),
        ("target", p.target),
        ("chain", p.chain),
        ("config", p.config_path),
        ("seed", str(p.seed)),
        ("started (UTC)", p.started_at_utc),
        ("duration", f"{run.duration_s:.1f} s" + (" (quick)" if run.quick else "")),
        ("Python", p.python),
        ("anvil", p.anvil_version or "none"),
        ("run it again", p.command),
    ]


PROVIDER_HEADER = ("id", "role", "HTTP URL (masked)", "WebSocket URL (masked)")


def providers(run: BattleRun) -> Rows:
    return [(i.id, i.role, i.url, i.ws_url or "") for i in run.provenance.providers]


def _slo_value(slos: Slos, name: str) -> str:
    value = getattr(slos, name)
    if name == "success_rate":
        return fmt.rate(value)
    if name == "peak_rss_bytes":
        return fmt.mebibytes(value)
    if name.endswith("_s"):
        return fmt.seconds(value)
    return fmt.count(value)


THRESHOLD_HEADER = ("threshold", "actual", "result")


def thresholds(result: ScenarioResult) -> Rows:
    """Each declared threshold, the value measured and ``met`` or the breach message."""
    breaches = {b.threshold: b.message for b in result.breaches}
    rows: Rows = []
    for threshold in result.thresholds:
        actual = fmt.NOT_RUN if result.slos is None else _slo_value(result.slos, threshold.slo)
        if result.skipped is not None:
            verdict = "not run"
        elif threshold in breaches:
            verdict = f"BREACH: {breaches[threshold]}"
        else:
            verdict = "met"
        rows.append((str(threshold), actual, verdict))
    # A breach of a threshold not declared (the runner's own checks) still shows.
    declared = set(result.thresholds)
    rows += [
        (str(b.threshold), fmt.number(b.actual), f"BREACH: {b.message}")
        for b in result.breaches
        if b.threshold not in declared
    ]
    return rows


SLO_HEADER = ("SLO", "value")


def slos(result: ScenarioResult) -> Rows:
    if result.slos is None:
        return []
    names = [n for n in result.slos.__struct_fields__ if n != "subscriptions"]
    return [(name, _slo_value(result.slos, name)) for name in names]


STREAM_HEADER = ("client", "subscription", "received", "gaps", "duplicates", "reorgs")


def streams(result: ScenarioResult) -> Rows:
    if result.slos is None:
        return []
    return [
        (s.client, s.subscription, str(s.received), str(s.gaps), str(s.duplicates), str(s.reorgs))
        for s in result.slos.subscriptions
    ]


CHAOS_HEADER = ("kind", "target", "start", "end")


def chaos(result: ScenarioResult) -> Rows:
    """The faults, with times in seconds since the scenario's first event."""
    recording = result.recording
    if recording is None or not recording.chaos:
        return []
    t0 = series.origin(recording) or 0.0
    return [
        (
            c.kind,
            c.target if c.target is not None else "every provider",
            f"+{c.started_at - t0:.2f} s",
            "not ended" if c.ended_at is None else f"+{c.ended_at - t0:.2f} s",
        )
        for c in recording.chaos
    ]


def facts(result: ScenarioResult) -> str:
    """One line: how long, at what rate, what was dropped."""
    text = f"{result.duration_s:.0f} s at {result.rps:g} req/s ({result.arrival})"
    if result.slos is not None and result.slos.dropped_events:
        text += (
            f"; {result.slos.dropped_events} events dropped by the recorder "
            "(SLOs are over the kept prefix)"
        )
    return text
