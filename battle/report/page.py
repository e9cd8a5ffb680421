"""``report.html``: one self-contained page (inline CSS, inline SVG plots, no script, no URL
fetched), readable offline and safe to open whatever the run recorded.

Every string that comes from the run (names, reasons, provider answers, config text) goes
through :func:`esc`: HTML-escaped, and code points HTML forbids (controls, noncharacters, lone
surrogates) shown as ``\\uXXXX`` escapes instead.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from battle.report import details, plots, table
from battle.results import BattleRun, FuzzResult, ScenarioResult

# Controls HTML forbids, lone surrogates, and the 66 noncharacters (U+FDD0..U+FDEF and the
# last two code points of every plane).
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
    + "]"
)
_SLUG = re.compile(r"[^a-z0-9]+")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;
padding:1em 1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de}
h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
code{background:#f6f8fa;padding:0 .2em}
.pass{color:#116329;font-weight:600}.breach{color:#cf222e;font-weight:700}
.skipped{color:#6e7781}.badge{padding:.1em .5em;border-radius:.3em;color:#fff}
.badge.pass{background:#1a7f37}.badge.breach{background:#cf222e}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
figcaption{color:#57606a;font-size:.9em}nav a{margin-right:.8em}
"""


def esc(text: str) -> str:
    escaped = html.escape(text, quote=True)
    return _FORBIDDEN.sub(lambda m: f"\\u{ord(m.group(0)):04x}", escaped)


def slug(index: int, name: str) -> str:
    return f"s{index}-" + _SLUG.sub("-", name.lower()).strip("-")


def _verdict_class(result: ScenarioResult) -> str:
    if result.skipped is not None:
        return "skipped"
    return "breach" if result.breaches else "pass"


def grid(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int | None = None
) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="num"' if numeric_from is not None and i >= numeric_from else ""
            cells.append(f"<td{cls}>{esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary(run: BattleRun) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in table.COLUMNS)
    body = []
    for index, result in enumerate(run.scenarios):
        name, verdict, *figures = table.row(result)
        cells = [
            f'<td><a href="#{slug(index, name)}">{esc(name)}</a></td>',
            f'<td class="{_verdict_class(result)}">{esc(verdict)}</td>',
            *(f'<td class="num">{esc(v)}</td>' for v in figures),
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"]
    notes = [
        f"<li><b>{esc(r.name)}</b>: <span class=breach>BREACH</span> {esc(b.message)}</li>"
        for r in run.scenarios
        for b in r.breaches
    ]
    if notes:
        out.append("<ul>" + "".join(notes) + "</ul>")
    return "\n".join(out)


def _fuzz(fuzz: FuzzResult | None) -> str:
    out = ['<h2 id="fuzz">Fuzz</h2>', f"<p>{esc(table.fuzz_line(fuzz))}</p>"]
    if fuzz is None or fuzz.skipped is not None:
        return "\n".join(out)
    out.append(f"<p>Took {fuzz.duration_s:.1f} s.</p>")
    for n, f in enumerate(fuzz.failures, 1):
        out += [
            f"<h3>Fuzz failure {n}: {esc(f.rule)}</h3>",
            f"<p>{esc(f.reason)}</p>",
            f"<p>Saved as <code>{esc(f.saved_as)}</code>; replay with:</p>",
            f"<pre>{esc(f.replay)}</pre>",
            "<details><summary>Request and answers</summary>",
            f"<p>Request:</p><pre>{esc(f.request)}</pre>",
            f"<p>The node answered:</p><pre>{esc(f.node_answer)}</pre>",
            f"<p>Lasso answered:</p><pre>{esc(f.lasso_answer)}</pre>",
            "</details>",
        ]
    if fuzz.stateful_failures:
        out.append("<h3>Stateful failures</h3>")
        out += [f"<pre>{esc(text)}</pre>" for text in fuzz.stateful_failures]
    return "\n".join(out)


def _plot(plot: plots.Plot) -> str:
    if plot.svg is None:
        return f"<p class=skipped>{esc(plot.title)}: {esc(plot.note)}</p>"
    caption = esc(plot.title) + (f" ({esc(plot.note)})" if plot.note else "")
    return f"<figure>{plot.svg}<figcaption>{caption}</figcaption></figure>"


def _scenario(index: int, result: ScenarioResult) -> str:
    verdict = table.verdict(result)
    cls = _verdict_class(result)
    out = [
        f'<h2 id="{slug(index, result.name)}">{esc(result.name)}: '
        f'<span class="{cls}">{esc(verdict)}</span></h2>',
        f"<p>{esc(result.summary)}</p>",
        f"<p>{esc(details.facts(result))}</p>",
    ]
    rows = details.thresholds(result)
    if rows:
        out.append(grid(details.THRESHOLD_HEADER, rows))
    slo_rows = details.slos(result)
    if slo_rows:
        out.append("<details><summary>Every SLO</summary>")
        out += [grid(details.SLO_HEADER, slo_rows, numeric_from=1), "</details>"]
    stream_rows = details.streams(result)
    if stream_rows:
        out += ["<h3>Subscriptions</h3>", grid(details.STREAM_HEADER, stream_rows, numeric_from=2)]
    chaos_rows = details.chaos(result)
    if chaos_rows:
        out += ["<h3>Chaos events</h3>", grid(details.CHAOS_HEADER, chaos_rows)]
    out += [_plot(plot) for plot in plots.scenario_plots(result, prefix=f"s{index}")]
    return "<section>\n" + "\n".join(out) + "\n</section>"


def render(run: BattleRun) -> str:
    p = run.provenance
    verdict = table.run_verdict(run)
    badge = "pass" if run.passed else "breach"
    nav = ['<a href="#summary">summary</a>', '<a href="#fuzz">fuzz</a>']
    nav += [f'<a href="#{slug(i, r.name)}">{esc(r.name)}</a>' for i, r in enumerate(run.scenarios)]
    nav.append('<a href="#config">config</a>')
    body = [
        f'<h1>Lasso battle report <span class="badge {badge}">{verdict}</span></h1>',
        f"<p>Chain <b>{esc(p.chain)}</b> on target <b>{esc(p.target)}</b>, seed {p.seed}, "
        f"started {esc(p.started_at_utc)}.</p>",
        "<nav>" + " ".join(nav) + "</nav>",
        '<h2 id="provenance">Provenance</h2>',
        grid(details.PROVENANCE_HEADER, details.provenance(run)),
        grid(details.PROVIDER_HEADER, details.providers(run)),
        '<h2 id="summary">Summary</h2>',
        _summary(run),
        _fuzz(run.fuzz),
        *(_scenario(i, r) for i, r in enumerate(run.scenarios)),
        '<h2 id="config">Config (secrets masked)</h2>',
        f"<pre>{esc(p.config_masked)}</pre>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Lasso battle report: {esc(p.chain)} {verdict}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
