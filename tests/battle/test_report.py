"""The battle report: its files, the summary table, secrets masked, and the HTML valid and
self-contained, built from hand-made runs (events with times, SLOs from battle.slo.compute)."""

from __future__ import annotations

import html
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import html5lib
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from battle.events import (
    ChaosEvent,
    Dropped,
    HeadObservation,
    Outcome,
    Recording,
    RequestEvent,
    ResourceSample,
    SubscriptionEvent,
    SubscriptionKind,
)
from battle.report import fmt, markdown, page, series, summary_table, write_report
from battle.report.mask import mask_text
from battle.report.plots import DRAW_FAILED
from battle.report.table import COLUMNS, row
from battle.results import (
    BattleRun,
    FuzzFailure,
    FuzzResult,
    Provenance,
    ProviderInfo,
    ScenarioResult,
    mask_url,
)
from battle.slo import Slos, compute
from battle.thresholds import evaluate, thresholds
from tests.battle import strategies as event_strategies

SECRET = "k3yS3cr3tAbCdEfGhIjKlMn0123"
PROVIDERS = ("anvil-0", "anvil-1", "anvil-2", "anvil-3")
METHODS = ("eth_blockNumber", "eth_getBlockByNumber", "eth_call", "eth_getLogs", "eth_chainId")

# --- building runs by hand ----------------------------------------------------------------


def synthetic_recording(events: int, *, seed: int = 7, duration_s: float = 300.0) -> Recording:
    """``events`` requests over ``duration_s`` seconds from t=1000, anvil-0 killed over the
    second third (its requests fail then), anvil-3 lagging from 80 % on, newHeads for two
    clients (one misses three blocks), head observations and RSS samples."""
    rng = random.Random(seed)
    t0 = 1000.0
    kill = ChaosEvent("kill", "anvil-0", t0 + duration_s / 3, t0 + duration_s / 2)
    lag = ChaosEvent("lag", "anvil-3", t0 + duration_s * 0.8, None)
    missed = range(int(duration_s * 0.4), int(duration_s * 0.4) + 3)  # in the kill
    requests = []
    for n in range(events):
        sent = t0 + duration_s * n / max(events, 1)
        provider = rng.choice(PROVIDERS)
        latency: float | None = rng.lognormvariate(-4.5, 0.6)
        outcome = Outcome.RESULT
        if provider == "anvil-0" and kill.started_at <= sent <= (kill.ended_at or sent):
            outcome, latency = rng.choice(
                [(Outcome.TIMEOUT, None), (Outcome.JSONRPC_ERROR, 2.0), (Outcome.HTTP_5XX, 0.4)]
            )
        requests.append(
            RequestEvent(
                scenario="s",
                client=f"raw-http-{n % 3}",
                transport="http",
                method=rng.choice(METHODS),
                sent_at=sent,
                answered_at=None if latency is None else sent + latency,
                http_status=None if outcome is Outcome.TIMEOUT else 200,
                outcome=outcome,
                sent_id=n,
                received_id=None if outcome is Outcome.TIMEOUT else n,
                error_code=-32603 if outcome is Outcome.JSONRPC_ERROR else None,
                provider=None if outcome is Outcome.TIMEOUT else provider,
            )
        )
    subs = [
        SubscriptionEvent(
            client=client,
            subscription="0xsub",
            kind=SubscriptionKind.HEADS,
            number=number,
            hash=f"0x{number:064x}",
            parent_hash=f"0x{number - 1:064x}",
            received_at=t0 + number + 0.05,
        )
        for client in ("sub-heads-1", "sub-heads-2")
        for number in range(1, int(duration_s))
        if not (client == "sub-heads-2" and number in missed)
    ]
    heads = [HeadObservation("raw-http-0", int(s), t0 + s + 0.1) for s in range(int(duration_s))]
    rss = [ResourceSample(60_000_000 + 1000 * i, t0 + i * 0.25) for i in range(int(duration_s * 4))]
    return Recording(
        requests=tuple(requests),
        subscriptions=tuple(subs),
        chaos=(kill, lag),
        heads=tuple(heads),
        resources=tuple(rss),
    )


def scenario(
    name: str,
    recording: Recording | None,
    *declared: str,
    skipped: str | None = None,
    summary: str = "a provider is killed",
) -> ScenarioResult:
    limits = thresholds(*declared)
    slos = None if recording is None else compute(recording)
    breaches = () if slos is None else tuple(evaluate(slos, limits))
    return ScenarioResult(
        name=name,
        summary=summary,
        duration_s=300.0,
        rps=20.0,
        arrival="poisson",
        thresholds=limits,
        slos=slos,
        breaches=breaches,
        recording=recording,
        skipped=skipped,
    )


def provenance(**changes: object) -> Provenance:
    base = Provenance(
        lasso_version="0.1.0",
        git_commit="6012d42",
        target="devnet",
        chain="devnet",
        config_path="/tmp/battle/settings.toml",
        config_masked='[chains.devnet]\nurl = "http://127.0.0.1:8545"\n',
        seed=1234,
        started_at_utc="2026-12-05T04:30:00Z",
        python="3.11.9",
        anvil_version="anvil 1.0.0",
        providers=tuple(
            ProviderInfo(p, f"http://127.0.0.1:{9000 + i}", f"ws://127.0.0.1:{9100 + i}", "full")
            for i, p in enumerate(PROVIDERS)
        ),
        command="python -m battle --seed 1234",
    )
    return msgspec.structs.replace(base, **changes)


def battle_run(
    *scenarios: ScenarioResult, fuzz: FuzzResult | None = None, **prov: object
) -> BattleRun:
    return BattleRun(
        provenance=provenance(**prov), scenarios=scenarios, fuzz=fuzz, duration_s=321.0, quick=False
    )


def mixed_run() -> BattleRun:
    """A pass, a breach, a skip, an empty scenario, and a fuzz failure planting markup."""
    small = synthetic_recording(400, duration_s=60.0)
    fuzz = FuzzResult(
        seed=99,
        examples=500,
        methods=41,
        failures=(
            FuzzFailure(
                rule="same result as the node",
                reason="<script>alert('reason')</script> differs",
                request='{"jsonrpc":"2.0","id":1,"method":"eth_call","params":["</pre>"]}',
                node_answer='{"result":"0x\u0001"}',
                lasso_answer="<html><body>502</body></html>",
                saved_as="battle/failures/abc.json",
                replay="python -m battle replay battle/failures/abc.json",
            ),
        ),
        duration_s=42.0,
        stateful_steps=120,
    )
    return battle_run(
        scenario("provider-killed", small, "success_rate >= 0.5", "gaps <= 10"),
        scenario("latency <b>", small, "latency_p99_s <= 0.001", "success_rate >= 0.99"),
        scenario("pruned-history", None, "success_rate >= 0.99", skipped="needs a pruned provider"),
        scenario("empty", Recording(), "success_rate >= 0.99"),
        fuzz=fuzz,
    )


class Written(msgspec.Struct, frozen=True):
    run: BattleRun
    paths: list[Path]

    def text(self, name: str) -> str:
        return next(p for p in self.paths if p.name == name).read_text()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """The mixed run, written once for the tests that read its files."""
    run = mixed_run()
    return Written(run, write_report(run, tmp_path_factory.mktemp("mixed") / "new" / "dir"))


# --- formatting ---------------------------------------------------------------------------


def test_none_slos_are_no_data_and_a_skipped_scenario_is_not_run():
    empty = row(scenario("empty", Recording()))
    assert len(empty) == len(COLUMNS)
    assert empty[1] == "pass"  # no thresholds declared: nothing to breach
    assert empty[2] == "0"  # requests is a count, never None
    assert set(empty[3:]) == {fmt.NO_DATA}
    skipped = row(scenario("pruned", None, "success_rate >= 0.9", skipped="no pruned provider"))
    assert skipped[1] == "skipped: no pruned provider"
    assert set(skipped[2:]) == {fmt.NOT_RUN}


def test_formatters():
    assert fmt.seconds(None) == "no data"
    assert fmt.seconds(0.0123) == "12.3 ms"
    assert fmt.seconds(2.5) == "2.50 s"
    assert fmt.seconds(0.0) == "0 s"
    assert fmt.rate(0.99996) == "99.99 %"  # rounded down: not "100.00 %"
    assert fmt.rate(1.0) == "100 %"
    assert fmt.pair(0, None) == "0/no data"
    assert fmt.mebibytes(64 * 2**20) == "64.0 MiB"
    assert fmt.number(3.0) == "3"
    assert fmt.clip("a\nb  c", 10) == "a b c"
    assert fmt.clip("x" * 20, 5) == "xxxx…"


def test_summary_row_figures():
    result = scenario("killed", synthetic_recording(400, duration_s=60.0))
    cells = dict(zip(COLUMNS, row(result), strict=True))
    slos = result.slos
    assert slos is not None
    assert cells["requests"] == "400"
    assert cells["success"] == fmt.rate(slos.success_rate)
    assert cells["p99"] == fmt.seconds(slos.latency_p99_s)
    assert cells["gaps/dups"] == "3/0"  # sub-heads-2 missed three blocks
    assert cells["peak RSS"].endswith("MiB")
    assert cells["failover"] == fmt.seconds(slos.failover_latency_s)
    assert slos.failover_latency_s is not None and slos.failover_latency_s < 1.0
    assert cells["non-JSON/5xx"] == f"0/{slos.http_5xx}"


def test_markdown_cells_and_fences_cannot_be_broken_out_of():
    assert markdown.cell("a|b\nc <i>") == "a\\|b c &lt;i&gt;"
    block = markdown.fenced("x\n```\nrm -rf /")
    assert block.startswith("````\n") and block.endswith("\n````")


@pytest.mark.slow
def test_a_breach_shows_BREACH_and_its_message_everywhere(mixed: Written):
    run = mixed.run
    breached = run.scenarios[1]
    assert breached.breaches
    message = breached.breaches[0].message
    text = summary_table(run)
    assert "BREACH" in text.splitlines()[3]  # the second scenario's row
    assert message in text
    assert "battle FAIL" in text
    md = mixed.text("report.md")
    assert "| BREACH |" in md
    assert message.replace("<", "&lt;").replace(">", "&gt;") in md
    page = mixed.text("report.html")
    assert "BREACH" in page
    assert html.escape(message) in page


@pytest.mark.slow
def test_a_skipped_scenario_says_why(mixed: Written):
    assert "skipped: needs a pruned provider" in summary_table(mixed.run)
    for name in ("report.md", "report.html"):
        assert "skipped: needs a pruned provider" in mixed.text(name)


def test_the_terminal_table_is_aligned():
    lines = summary_table(mixed_run()).splitlines()
    header, rule, *rows = lines[:6]
    assert header.split()[:2] == ["scenario", "result"]
    assert set(rule) <= {"-", " "}
    # Every figure column ends where its rule ends, in every row (right-aligned).
    ends = [m.end() for m in re.finditer(r"-+", rule)]
    assert len(ends) == len(COLUMNS)
    for line in rows:
        assert len(line) == len(rule)
        for end in ends[2:]:
            assert line[end - 1] != " " and (end == len(line) or line[end] == " "), (line, end)
    long = summary_table(
        battle_run(scenario("x", None, skipped="a very long reason " * 10))
    ).splitlines()
    assert len(long[2]) <= len(long[1])  # the cell is clipped; the full reason comes below
    assert any(line.startswith("x: skipped: a very long reason") for line in long)


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.slow
def test_masked_urls_never_hold_the_secret(tmp_path: Path):
    keyed = f"https://eth-mainnet.example.com/v2/{SECRET}"
    run = battle_run(
        scenario("s", Recording()),
        providers=(
            ProviderInfo("alchemy", keyed, f"wss://eth-mainnet.example.com/v2/{SECRET}", "full"),
            ProviderInfo("query", f"https://rpc.example.com/?apikey={SECRET}", None, "full"),
            ProviderInfo("basic", f"https://user:{SECRET}@rpc.example.com/", None, "full"),
        ),
        config_masked=f'url = "{keyed}"\napi_key = "{SECRET}"\n'
        f'headers = {{ Authorization = "Bearer {SECRET}" }}\n',
        command=f"python -m battle --config /x.toml  # {keyed}",
    )
    assert SECRET not in summary_table(run)
    for path in write_report(run, tmp_path):
        assert SECRET not in path.read_text(), path.name
    assert "https://eth-mainnet.example.com/v2/***" in (tmp_path / "report.md").read_text()


def test_masking_is_idempotent_so_a_masked_run_round_trips():
    url = mask_url(f"wss://u:p@h.example:8546/ws/{SECRET}?k=1")
    assert mask_url(url) == url
    text = mask_text(f'url = "{url}"')
    assert mask_text(text) == text


def test_a_body_that_is_not_utf8_does_not_stop_the_report(tmp_path: Path):
    """The fuzz phase keeps such a body as surrogateescape text; JSON cannot hold it."""
    raw = b"\xff\xfe{}".decode("utf-8", "surrogateescape")
    failure = FuzzFailure("rule", f"got {raw}", raw, "ok", f"HTTP 200 {raw}", "f.json", "replay")
    fuzz = FuzzResult(seed=1, examples=1, methods=1, failures=(failure,), duration_s=1.0)
    lone = RequestEvent("s", "c", "http", "m\ud800", 1.0, 1.1, 200, Outcome.RESULT)
    run = battle_run(scenario("s", Recording(requests=(lone,))), fuzz=fuzz)
    summary_table(run).encode("utf-8")  # printable
    paths = write_report(run, tmp_path)
    decoded = msgspec.json.decode(paths[0].read_bytes(), type=BattleRun)
    assert decoded.fuzz is not None
    assert decoded.fuzz.failures[0].request == "\\xff\\xfe{}"
    recording = decoded.scenarios[0].recording
    assert recording is not None and recording.requests[0].method == "m\\ud800"
    assert "\\xff\\xfe{}" in paths[2].read_text()


# --- files --------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_json_decodes_back_to_the_run(mixed: Written):
    assert [p.name for p in mixed.paths] == ["report.json", "report.md", "report.html"]
    decoded = msgspec.json.decode(mixed.paths[0].read_bytes(), type=BattleRun)
    assert decoded == mixed.run


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)


@pytest.mark.slow
def test_report_html_is_valid_self_contained_and_escaped(mixed: Written):
    run = mixed.run
    page = mixed.text("report.html")
    html5lib.HTMLParser(strict=True).parse(page)  # raises on the first parse error
    assert DRAW_FAILED not in page
    for result in run.scenarios:
        assert html.escape(result.name) in page
    svgs = _svgs(page)
    assert len(svgs) >= 8  # two recorded scenarios, several plots each
    for svg in svgs:
        ET.fromstring(svg)  # every inline SVG is well-formed XML
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "ids clash between plots"
    # Self-contained: nothing fetched, nothing run.
    assert "<script" not in page
    assert "<link" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    # Planted markup comes out as text.
    assert "&lt;script&gt;alert(&#x27;reason&#x27;)&lt;/script&gt;" in page
    assert "&lt;html&gt;&lt;body&gt;502" in page
    assert "\\u0001" in page  # a control character is shown, not emitted


@pytest.mark.slow
def test_plots_survive_empty_skipped_and_odd_scenarios(tmp_path: Path):
    odd = Recording(
        requests=(
            RequestEvent("s", "c", "http", "eth_$x$_{", 5.0, None, None, Outcome.TIMEOUT),
            RequestEvent("s", "c", "ws", "m\x00", 5.0, 5.0, 200, Outcome.RESULT, provider="$p$"),
        ),
        chaos=(ChaosEvent("cut\x07", None, 4.0),),
        dropped=Dropped(request=5),
    )
    only_chaos = Recording(chaos=(ChaosEvent("kill", "anvil-0", 1.0, 2.0),))
    run = battle_run(
        scenario("odd", odd, "success_rate >= 0.99"),
        scenario("only chaos", only_chaos),
        scenario("no recording", None),
        scenario("skipped", None, skipped="no WebSocket"),
        scenario("empty", Recording()),
    )
    write_report(run, tmp_path)
    page = (tmp_path / "report.html").read_text()
    html5lib.HTMLParser(strict=True).parse(page)
    assert DRAW_FAILED not in page
    for svg in _svgs(page):
        ET.fromstring(svg)
    assert "no answered requests" in page
    assert "5 events dropped" in page
    assert "battle FAIL" in summary_table(run)


def test_html_escape_shows_code_points_html_forbids():
    text = "a\x01\ufffe\U0005ffff\ud800<b>&"
    assert page.esc(text) == "a\\u0001\\ufffe\\u5ffff\\ud800&lt;b&gt;&amp;"
    doc = f"<!DOCTYPE html><html lang=en><title>t</title><p>{page.esc(text)}</p></html>"
    html5lib.HTMLParser(strict=True).parse(doc)


def test_head_streams_mark_gaps_and_duplicates_per_subscription():
    def head(number: int, at: float, client: str = "c", sub: str = "s") -> SubscriptionEvent:
        return SubscriptionEvent(
            client, sub, SubscriptionKind.HEADS, number, f"h{number}", f"h{number - 1}", at
        )

    recording = Recording(
        subscriptions=(
            head(1, 11.0),
            head(2, 12.0),
            head(5, 15.0),  # a gap of two
            head(5, 15.5),  # a duplicate
            head(3, 16.0, sub="s2"),  # a reconnection: a new stream, not a gap
        )
    )
    streams = series.HeadStreams(recording, t0=10.0)
    assert streams.clients == [("c", [(1.0, 1.0), (2.0, 2.0), (5.0, 5.0), (5.5, 5.0), (6.0, 3.0)])]
    assert streams.gaps == [(5.0, 5.0)]
    assert streams.duplicates == [(5.5, 5.0)]


def test_series_thin_keeps_outliers_and_the_limit():
    points = [(float(i), 1.0) for i in range(10_000)] + [(5000.5, 99.0)]
    kept = series.thin(points, 1000)
    assert len(kept) == 1000
    assert (5000.5, 99.0) in kept
    assert kept == sorted(kept)
    assert series.thin(points[:10], 1000) == points[:10]
    assert series.label("a\x00b\nc") == "a?b?c"
    assert series.label(None) == series.NO_PROVIDER


@pytest.mark.slow
def test_a_long_run_report_stays_small(tmp_path: Path):
    """50,000 requests in one 5-minute scenario (plus subscriptions, RSS): the HTML stays
    under 2 MB because points are thinned and rasterised."""
    run = battle_run(scenario("long", synthetic_recording(50_000), "success_rate >= 0.9"))
    write_report(run, tmp_path)
    size = (tmp_path / "report.html").stat().st_size
    assert size < 2_000_000, size


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "firefox")


@pytest.mark.slow
def test_report_html_renders_in_a_headless_browser(mixed: Written, tmp_path: Path):
    browser = next((path for b in _BROWSERS if (path := shutil.which(b))), None)
    if browser is None:
        pytest.skip(f"no headless browser on this machine (looked for {', '.join(_BROWSERS)})")
    shot = tmp_path / "shot.png"
    url = next(p for p in mixed.paths if p.name == "report.html").as_uri()
    if "firefox" in browser:
        command = [browser, "--headless", "--screenshot", str(shot), url]
    else:
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--screenshot={shot}",
            url,
        ]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_slos_of_an_empty_recording_are_none():
    # The report relies on this: "no data" is None, never a perfect value.
    slos: Slos = compute(Recording())
    assert slos.success_rate is None and slos.latency_p50_s is None


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recording=event_strategies.recordings, name=event_strategies.names)
def test_any_recording_gives_a_valid_page_and_every_plot(recording: Recording, name: str):
    """Whatever was recorded (any names, times in any order, answers before questions), the
    page parses strictly and no plot fails to draw."""
    run = battle_run(scenario(name, recording, "success_rate >= 0.9"))
    text = page.render(run)
    html5lib.HTMLParser(strict=True).parse(text)
    assert DRAW_FAILED not in text
    for svg in _svgs(text):
        ET.fromstring(svg)
