"""The battle runner's flow, options and exit codes, with fake parts (no anvil, no gateway).

:func:`battle.run.main` is driven end to end with a :class:`battle.run.Parts` of fakes: an
environment whose gateways are fake, workloads that record canned events, scenarios with tiny
durations. What is real: option parsing, scenario selection and skipping, the concurrent
drive, SLOs and thresholds, the exit status, the provenance and the printed lines.
"""

from __future__ import annotations

import io
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.lowlevel

import battle.options
import battle.run as run_module
from battle.chaindata import ChainData
from battle.control import Need
from battle.env import TargetUnavailable
from battle.events import ChaosEvent, Outcome, Recorder, RequestEvent
from battle.options import Options, parse_options
from battle.progress import PlainProgress, RichProgress
from battle.provenance import CHECKOUT
from battle.results import BattleRun, FuzzFailure, FuzzResult, ProviderInfo
from battle.run import Parts, main
from battle.scenario import Rate, Scenario
from battle.targets import PUBLIC_SETTINGS, check_reachable
from battle.thresholds import thresholds
from lasso import cli
from lasso.config import load_settings


class Unavailable(Exception):
    pass


@dataclass(frozen=True)
class FakeEndpoint:
    http_url: str
    ws_url: str
    scenario: str


@dataclass
class FakeChaos:
    recorder: Recorder
    providers: tuple[str, ...] = ("p1", "p2")

    def kill(self, provider: str) -> None:
        now = trio.current_time()
        self.recorder.record(ChaosEvent("kill", provider, now, now))


@dataclass
class FakeGateway:
    chaos: FakeChaos
    http_url: str = "http://127.0.0.1:1/rpc/devnet"
    ws_url: str = "ws://127.0.0.1:1/ws/rpc/devnet"
    pid: int = field(default_factory=os.getpid)


@dataclass
class FakeEnv:
    needs: frozenset[Need] = frozenset(Need)
    chain: str = "devnet"
    chain_data: ChainData | None = None
    oracle_http_url: str | None = None
    oracle_ws_url: str | None = None
    config_path: Path = Path("/tmp/battle/settings.toml")
    gateways: int = 0
    log_traffic_calls: list[float] = field(default_factory=list)
    opened_with: dict[str, Any] = field(default_factory=dict)

    def providers(self) -> tuple[ProviderInfo, ...]:
        return (ProviderInfo("p1", "http://127.0.0.1:2"), ProviderInfo("p2", "http://127.0.0.1:3"))

    def config_masked(self) -> str:
        return "[chains.devnet]\n"

    def has(self, need: Need) -> bool:
        return need in self.needs

    def anvil_version(self) -> str:
        return "anvil 1.0.0"

    @asynccontextmanager
    async def gateway(self, recorder: Recorder) -> AsyncIterator[FakeGateway]:
        self.gateways += 1
        yield FakeGateway(FakeChaos(recorder))

    async def log_traffic(self, duration_s: float) -> None:
        self.log_traffic_calls.append(duration_s)


def answered(scenario: str, ok: bool, at: float, n: int) -> RequestEvent:
    return RequestEvent(
        scenario=scenario,
        client="raw-http-1",
        transport="http",
        method="eth_blockNumber",
        sent_at=at,
        answered_at=at + 0.001,
        http_status=200,
        outcome=Outcome.RESULT if ok else Outcome.JSONRPC_ERROR,
        sent_id=n,
        received_id=n,
        provider="p2",
    )


async def fake_requests(endpoint: FakeEndpoint, recorder: Recorder, rate: Rate, *args: Any) -> None:
    """Ten answers; every one fails in a scenario named ``bad...``."""
    for n in range(10):
        ok = not endpoint.scenario.startswith("bad")
        recorder.record(answered(endpoint.scenario, ok, trio.current_time(), n))
        await trio.lowlevel.checkpoint()


async def nothing(*args: Any) -> None:
    await trio.lowlevel.checkpoint()


async def kill_p1(chaos: FakeChaos) -> None:
    chaos.kill("p1")


def scenario(name: str, **kw: Any) -> Scenario:
    values: dict[str, Any] = {
        "summary": f"{name}: p1 killed",
        "duration_s": 0.01,
        "chaos": kill_p1,
        "thresholds": thresholds("success_rate >= 0.99"),
    }
    values.update(kw)
    return Scenario(name=name, **values)


GOOD = scenario("good", quick=True)
BAD = scenario("bad")
PRUNED = scenario("pruned-history", needs=frozenset({Need.PRUNED}), quick=True)


@dataclass
class Rig:
    env: FakeEnv = field(default_factory=FakeEnv)
    unavailable: str | None = None
    written: list[BattleRun] = field(default_factory=list)
    fuzz_calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    fuzz_failures: int = 0
    scenarios: tuple[Scenario, ...] = (GOOD, BAD, PRUNED)

    def parts(self, **overrides: Any) -> Parts:
        @asynccontextmanager
        async def open_env(**kw: Any) -> AsyncIterator[FakeEnv]:
            self.env.opened_with = kw
            if self.unavailable is not None:
                raise Unavailable(self.unavailable)
            yield self.env

        async def run_fuzz(*args: Any, **kw: Any) -> FuzzResult:
            self.fuzz_calls.append((args, kw))
            failure = FuzzFailure("id", "the id changed", "{}", "{}", "{}", "f.json", "replay f")
            return FuzzResult(kw["seed"], 5, 3, (failure,) * self.fuzz_failures, 0.1)

        async def run_stateful(env: FakeEnv, seed: int, steps: int) -> tuple[int, list[str]]:
            return steps, []

        def write_report(run: BattleRun, directory: Path) -> list[Path]:
            self.written.append(msgspec.json.decode(msgspec.json.encode(run), type=BattleRun))
            return [directory / "report.md"]

        values: dict[str, Any] = {
            "open_env": open_env,
            "unavailable": Unavailable,
            "all_scenarios": self.scenarios,
            "quick_scenarios": tuple(s for s in self.scenarios if s.quick),
            "endpoint": FakeEndpoint,
            "run_requests": fake_requests,
            "run_subscribers": nothing,
            "run_web3": nothing,
            "sample_rss": nothing,
            "run_fuzz": run_fuzz,
            "run_stateful": run_stateful,
            "write_report": write_report,
            "summary_table": lambda run: (
                "| scenario | result |\n"
                + "\n".join(
                    f"| {s.name} | {'pass' if s.passed else 'BREACH'} |" for s in run.scenarios
                )
            ),
        }
        values.update(overrides)
        return Parts(**values)

    def main(self, *argv: str, **overrides: Any) -> int:
        return main(list(argv), parts=self.parts(**overrides), progress=PlainProgress())


@pytest.fixture
def rig(tmp_path: Path) -> Callable[..., Rig]:
    def make(**kw: Any) -> Rig:
        return Rig(**kw)

    return make


def out(tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "report"), "--seed", "7"]


# --- options -------------------------------------------------------------------------------


def test_defaults_are_the_devnet_target_and_a_random_seed() -> None:
    options = parse_options([], {}, rng=random.Random(1))
    assert (options.target, options.chain, options.config) == ("devnet", "devnet", None)
    assert options.seed == random.Random(1).randrange(2**32)
    assert options.fuzz and not options.quick and not options.break_failover


def test_battle_target_and_chain_come_from_the_environment() -> None:
    assert parse_options([], {"BATTLE_TARGET": "public"}).chain == "ethereum"
    options = parse_options([], {"BATTLE_TARGET": "public", "BATTLE_CHAIN": "base"})
    assert (options.target, options.chain) == ("public", "base")
    options = parse_options(["--target", "devnet"], {"BATTLE_TARGET": "public"})
    assert (options.target, options.chain) == ("devnet", "devnet")


def test_config_alone_means_the_config_target_and_needs_a_chain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = parse_options(["--config", "ops.toml", "--chain", "base"], {})
    assert (options.target, options.chain, options.config) == ("config", "base", Path("ops.toml"))
    with pytest.raises(SystemExit) as no_chain:
        parse_options(["--config", "ops.toml"], {})
    assert no_chain.value.code == 2
    assert "--chain NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit) as no_config:
        parse_options(["--target", "config", "--chain", "base"], {})
    assert no_config.value.code == 2
    with pytest.raises(SystemExit):
        parse_options([], {"BATTLE_TARGET": "mainnet"})


def test_the_rerun_command_parses_back_to_the_same_battle() -> None:
    argv = ["--config", "my ops.toml", "--chain", "base", "--quick", "--scenario", "a"]
    argv += ["--scenario", "b", "--break-failover", "--no-fuzz", "--fuzz-examples", "9"]
    options = parse_options(argv, {"BATTLE_TARGET": "public"}, rng=random.Random(3))
    words = shlex.split(options.command())
    assert words[:3] == ["python", "-m", "battle"]
    assert parse_options(words[3:], {"BATTLE_TARGET": "devnet"}) == options


def test_fuzz_sizes_follow_quick_unless_given() -> None:
    full, quick = parse_options([], {}), parse_options(["--quick"], {})
    assert full.examples > quick.examples and full.fuzz_budget_s > quick.fuzz_budget_s
    assert parse_options(["--quick", "--fuzz-examples", "5"], {}).examples == 5


# --- the flow and exit codes ---------------------------------------------------------------


def test_an_unreachable_target_is_skipped_with_its_reason_and_exits_0(
    rig: Callable[..., Rig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig(unavailable="no route to the public providers of ethereum")
    assert r.main("--target", "public", *out(tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("battle: seed 7; rerun with: python -m battle --target public")
    assert lines[-1] == "battle: skipped: no route to the public providers of ethereum"
    assert r.written == []


def test_a_passing_battle_exits_0_with_report_summary_and_provenance(
    rig: Callable[..., Rig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig()
    assert r.main("--scenario", "good", "--no-fuzz", *out(tmp_path)) == 0
    (run,) = r.written
    assert [s.name for s in run.scenarios] == ["good"] and run.passed
    good = run.scenarios[0]
    assert good.slos is not None and good.slos.requests == 10 and good.slos.success_rate == 1
    assert good.recording is not None and good.recording.chaos[0].target == "p1"
    prov = run.provenance
    assert prov.seed == 7 and prov.target == "devnet" and prov.chain == "devnet"
    assert prov.command == (
        "python -m battle --target devnet --chain devnet --seed 7 --scenario good --no-fuzz"
    )
    assert prov.anvil_version == "anvil 1.0.0" and len(prov.providers) == 2
    assert prov.config_masked == "[chains.devnet]\n"
    assert prov.lasso_version and prov.python
    assert run.fuzz is not None and run.fuzz.skipped == "--no-fuzz"
    assert r.env.opened_with["broken"] is False and r.env.opened_with["seed"] == 7
    assert r.env.log_traffic_calls == [0.01]
    printed = capsys.readouterr().out
    assert "| good | pass |" in printed
    assert f"battle: report: {tmp_path / 'report' / 'report.md'}" in printed
    assert "battle: passed, exit 0; rerun with: python -m battle" in printed


def test_a_breach_exits_1_and_names_the_slo(
    rig: Callable[..., Rig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig()
    assert r.main("--scenario", "good", "--scenario", "bad", "--no-fuzz", *out(tmp_path)) == 1
    (run,) = r.written
    good, bad = run.scenarios
    assert good.passed and not bad.passed
    (breach,) = bad.breaches
    assert breach.threshold.slo == "success_rate" and breach.actual == 0
    assert "| bad | BREACH |" in capsys.readouterr().out


def test_break_failover_reaches_the_env_and_the_rerun_command(
    rig: Callable[..., Rig], tmp_path: Path
) -> None:
    r = rig()
    r.main("--scenario", "good", "--no-fuzz", "--break-failover", *out(tmp_path))
    assert r.env.opened_with["broken"] is True
    assert "--break-failover" in r.written[0].provenance.command


def test_a_scenario_whose_need_is_missing_is_skipped_with_the_reason(
    rig: Callable[..., Rig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = rig(env=FakeEnv(needs=frozenset({Need.PROXY})))
    assert r.main("--quick", "--no-fuzz", *out(tmp_path)) == 0
    (run,) = r.written
    assert [(s.name, s.skipped) for s in run.scenarios] == [
        ("good", None),
        ("pruned-history", "the devnet target has no pruned"),
    ]
    assert run.passed and r.env.gateways == 1
    assert "battle: pruned-history: skipped: the devnet target has no pruned" in (
        capsys.readouterr().out
    )


def test_an_unknown_scenario_is_bad_usage(
    rig: Callable[..., Rig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rig().main("--scenario", "nope", *out(tmp_path), named_only=(scenario("base"),)) == 2
    assert (
        "unknown scenario nope; known: base, good, bad, pruned-history" in capsys.readouterr().err
    )


def test_a_named_only_scenario_runs_by_name_and_not_by_default(
    rig: Callable[..., Rig], tmp_path: Path
) -> None:
    r = rig()
    base = scenario("base")
    assert r.main("--scenario", "base", "--no-fuzz", *out(tmp_path), named_only=(base,)) == 0
    assert r.main("--quick", "--no-fuzz", *out(tmp_path), named_only=(base,)) == 0
    assert [[s.name for s in run.scenarios] for run in r.written] == [
        ["base"],
        ["good", "pruned-history"],
    ]


def test_a_crashing_scenario_is_a_breach_and_the_next_one_still_runs(
    rig: Callable[..., Rig], tmp_path: Path
) -> None:
    async def crash(chaos: FakeChaos) -> None:
        raise RuntimeError("the provider id is unknown")

    r = rig(scenarios=(scenario("crash", chaos=crash), GOOD))
    assert r.main("--scenario", "crash", "--scenario", "good", "--no-fuzz", *out(tmp_path)) == 1
    crashed, good = r.written[0].scenarios
    assert [b.message for b in crashed.breaches] == [
        "the scenario aborted: RuntimeError: the provider id is unknown"
    ]
    assert good.passed


def test_a_hanging_scenario_is_aborted_as_a_breach(
    rig: Callable[..., Rig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "MARGIN_S", 0.05)

    async def hang(chaos: FakeChaos) -> None:
        await trio.sleep_forever()

    r = rig(scenarios=(scenario("hang", chaos=hang),))
    assert r.main("--no-fuzz", *out(tmp_path)) == 1
    (hung,) = r.written[0].scenarios
    assert hung.breaches[-1].message == "the scenario aborted: did not finish within 0 s (a hang)"
    assert hung.slos is not None and hung.slos.requests == 10  # what it recorded is kept


def test_the_fuzz_phase_runs_with_chain_data_and_its_failures_fail_the_battle(
    rig: Callable[..., Rig], tmp_path: Path
) -> None:
    data = ChainData(("0x00",), (), (), "0xe", "0xr", "0xt", 0, (), ())
    env = FakeEnv(chain_data=data, oracle_http_url="http://node", oracle_ws_url="ws://node")
    r = rig(env=env, fuzz_failures=1)
    assert r.main("--scenario", "good", "--quick", *out(tmp_path)) == 1
    ((args, kw),) = r.fuzz_calls
    assert args == ("http://127.0.0.1:1/rpc/devnet", "http://node", "ws://node", data)
    assert kw["seed"] == 7 and kw["max_examples"] == parse_options(["--quick"], {}).examples
    assert kw["outdir"] == tmp_path / "report" / "fuzz"
    fuzz = r.written[0].fuzz
    assert fuzz is not None and fuzz.stateful_steps > 0 and len(fuzz.failures) == 1
    assert r.written[0].scenarios[0].passed and not r.written[0].passed


def fuzzing_env() -> FakeEnv:
    data = ChainData(("0x00",), (), (), "0xe", "0xr", "0xt", 0, (), ())
    return FakeEnv(chain_data=data, oracle_http_url="http://node", oracle_ws_url="ws://node")


def test_a_crashing_fuzz_phase_is_a_failure_and_the_scenarios_still_run(
    rig: Callable[..., Rig], tmp_path: Path
) -> None:
    async def crash(*args: Any, **kw: Any) -> FuzzResult:
        raise RuntimeError("the gateway exited at start")

    r = rig(env=fuzzing_env())
    assert r.main("--scenario", "good", *out(tmp_path), run_fuzz=crash) == 1
    (run,) = r.written
    assert run.fuzz is not None
    assert [(f.rule, f.reason) for f in run.fuzz.failures] == [
        ("fuzz phase", "RuntimeError: the gateway exited at start")
    ]
    assert run.scenarios[0].passed


def test_a_hanging_fuzz_phase_is_stopped_at_its_bound_as_a_failure(
    rig: Callable[..., Rig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(battle.options.FUZZ_BUDGET_S, True, 0.02)

    async def hang(*args: Any, **kw: Any) -> FuzzResult:
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    r = rig(env=fuzzing_env())
    assert r.main("--scenario", "good", "--quick", *out(tmp_path), run_fuzz=hang) == 1
    fuzz = r.written[0].fuzz
    assert fuzz is not None and "did not finish within 0 s (a hang)" in fuzz.failures[0].reason


def test_without_chain_data_the_fuzz_phase_is_skipped_saying_why(
    rig: Callable[..., Rig], tmp_path: Path
) -> None:
    r = rig()
    assert r.main("--scenario", "good", *out(tmp_path)) == 0
    fuzz = r.written[0].fuzz
    assert fuzz is not None and fuzz.skipped is not None
    assert "no seeded chain data on the devnet target" in fuzz.skipped
    assert r.fuzz_calls == []


# --- lasso battle ---------------------------------------------------------------------------


def test_lasso_battle_hands_its_arguments_to_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], str]] = []

    def fake_main(argv: list[str], *, prog: str) -> int:
        seen.append((argv, prog))
        return 1

    monkeypatch.setattr(run_module, "main", fake_main)
    argv = ["battle", "--config", "ops.toml", "--chain", "base", "--seed", "3", "--quick"]
    assert cli.main(argv) == 1
    assert seen == [(argv[1:], "lasso battle")]


def test_lasso_battle_without_the_harness_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "battle.run", None)
    assert cli.main(["battle", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("lasso battle: the battle harness is not installed")
    assert "make install" in err[0]


def test_lasso_battle_without_its_extra_dependencies_says_which(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run_module, "missing_dependencies", lambda: ["rich", "web3"])
    assert cli.main(["battle"]) == 2
    err = capsys.readouterr().err
    assert "needs rich, web3, not installed" in err and "[battle] extra" in err


def test_other_commands_still_refuse_unknown_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.main(["check-config", "x.toml", "--bogus"])
    assert refused.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_plain_progress_prints_a_line_per_phase_start_and_end() -> None:
    sink = io.StringIO()
    progress = PlainProgress(sink)
    with progress.phase("good", 40) as phase:
        phase.outcome = "pass"
    start, end = sink.getvalue().splitlines()
    assert start == "battle: good: started (~40 s)"
    assert end.startswith("battle: good: pass (") and end.endswith(" s)")


def test_options_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Options("devnet", "devnet", None, 1).seed = 2  # type: ignore[misc]


# --- the public target, for real --------------------------------------------------------------


@pytest.mark.slow
def test_public_target_offline_skips_saying_why_and_exits_0(tmp_path: Path) -> None:
    """``BATTLE_TARGET=public BATTLE_CHAIN=ethereum python -m battle`` with no network: one
    bounded connect per provider, then one line saying why, exit 0, within seconds."""
    public = load_settings(str(PUBLIC_SETTINGS)).profiles["default"].chains["ethereum"]
    try:
        trio.run(check_reachable, [p.url for p in public.providers])
    except TargetUnavailable:
        pass
    else:
        pytest.skip("the public providers are reachable from here")
    environ = {**os.environ, "BATTLE_TARGET": "public", "BATTLE_CHAIN": "ethereum"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "battle", "--no-fuzz", "--out", str(tmp_path / "r")],
        cwd=CHECKOUT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines[0].startswith("battle: seed ")
    assert "--target public --chain ethereum" in lines[0]
    assert lines[-1].startswith("battle: skipped: no network: "), done.stdout
    assert elapsed < 15


@pytest.mark.slow
@pytest.mark.parametrize("beside_battle", [True, False])
def test_lasso_battle_finds_the_harness_beside_an_editable_lasso_only(
    tmp_path: Path, beside_battle: bool
) -> None:
    """``.venv/bin/lasso battle`` in a checkout (an editable install maps only ``lasso``)
    finds ``battle`` beside it; a copy of ``lasso`` alone (a production install) says how to
    get the harness, in one line, exit 2."""
    lasso_dir = CHECKOUT / "lasso"
    if beside_battle:
        (tmp_path / "lasso").symlink_to(lasso_dir)  # resolves into the checkout
    else:
        shutil.copytree(lasso_dir, tmp_path / "lasso")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import lasso.cli; "
    code += "sys.exit(lasso.cli.main(['battle', '--help']))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if beside_battle:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: lasso battle")
    else:
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        assert line.startswith("lasso battle: the battle harness is not installed")


def test_rich_progress_shows_each_phase_with_its_budget_and_outcome() -> None:
    from rich.console import Console

    sink = io.StringIO()
    progress = RichProgress(Console(file=sink, force_terminal=True, width=120))
    with progress.shown():
        with progress.phase("devnet target (devnet)") as env:
            env.outcome = "ready"
        with progress.phase("provider-killed", 13) as phase:
            progress.line("battle: a line above the bars")
            phase.outcome = "BREACH (1)"
    shown = sink.getvalue()
    for text in ("devnet target (devnet)", "ready", "provider-killed", "/ 13 s", "BREACH (1)"):
        assert text in shown
    assert "battle: a line above the bars" in shown
