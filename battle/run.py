"""The battle runner: the environment, the fuzz phase, each scenario, SLOs, the report, the verdict.

``main(argv)`` is ``python -m battle`` / ``lasso battle`` / ``make battle``:

1. print the seed and the command that reruns this battle;
2. open the target (:func:`battle.env.open_battle_env`); an unreachable target (no network
   for the public providers) prints ``battle: skipped: <reason>`` and exits 0;
3. the fuzz phase: differential fuzzing (:func:`battle.fuzz.run_fuzz`) through a fresh
   gateway, then the stateful machine (:func:`battle.stateful.run_stateful`), on targets with
   the harness's seeded chain data;
4. each scenario on a fresh gateway with its own recorder: the raw workload, web3.py,
   subscribers, log traffic (devnet), the RSS sampler and the scenario's chaos run together
   for its duration, bounded by ``duration + MARGIN_S``; a scenario whose needs the target
   lacks is skipped with the reason; one that aborts (a hang, a crash) is a breach saying so;
5. SLOs from the recording (:func:`battle.slo.compute`), the scenario's thresholds
   (:func:`battle.thresholds.evaluate`), a :class:`BattleRun` with its provenance;
6. the report (:func:`battle.report.write_report`), the summary table, and exit 1 on any
   breach or fuzz failure, else 0.

The parts it composes come in as a :class:`Parts` (:func:`default_parts` imports the real
ones), so the flow is tested with fakes in ``tests/battle/test_run.py``.
"""

from __future__ import annotations

import os
import random
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from battle.chaindata import ChainData
from battle.control import Chaos, Need
from battle.events import Recorder
from battle.options import Options, parse_options
from battle.progress import PlainProgress, Progress, for_stdout
from battle.provenance import describe
from battle.results import BattleRun, FuzzFailure, FuzzResult, ScenarioResult
from battle.scenario import Scenario
from battle.slo import compute
from battle.thresholds import Breach, Threshold, evaluate

#: Seconds a scenario may run past its duration (workloads drain, chaos undoes) before it is
#: aborted as a hang.
MARGIN_S = 20.0
#: Seconds to start and stop a scenario's gateway on top of that.
GATEWAY_S = 60.0
#: The fuzz phase is aborted (a failure) after this many times its budget.
FUZZ_BOUND = 3.0
#: The modules the harness needs beyond Lasso's own (the ``battle`` and ``dev`` extras).
REQUIRED_MODULES = ("rich", "web3", "matplotlib", "html5lib", "hypothesis")


class GatewayLike(Protocol):
    """What the runner uses of :class:`battle.env.GatewayProcess`."""

    @property
    def http_url(self) -> str: ...
    @property
    def ws_url(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def chaos(self) -> Chaos: ...


class EnvLike(Protocol):
    """What the runner uses of :class:`battle.env.BattleEnv`."""

    @property
    def chain(self) -> str: ...
    @property
    def chain_data(self) -> ChainData | None: ...
    @property
    def oracle_http_url(self) -> str | None: ...
    @property
    def oracle_ws_url(self) -> str | None: ...
    @property
    def config_path(self) -> Path: ...
    def providers(self) -> Any: ...
    def config_masked(self) -> str: ...
    def has(self, need: Need) -> bool: ...
    def anvil_version(self) -> str | None: ...
    def gateway(self, recorder: Recorder) -> AbstractAsyncContextManager[Any]: ...
    async def log_traffic(self, duration_s: float) -> object: ...


@dataclass(frozen=True)
class Parts:
    """The harness's parts the runner composes (real ones from :func:`default_parts`)."""

    open_env: Callable[..., AbstractAsyncContextManager[Any]]
    unavailable: type[Exception]  # battle.env.TargetUnavailable
    all_scenarios: Sequence[Scenario]
    quick_scenarios: Sequence[Scenario]
    endpoint: Callable[[str, str, str], Any]  # battle.workload.Endpoint
    run_requests: Callable[..., Awaitable[object]]
    run_subscribers: Callable[..., Awaitable[object]]
    run_web3: Callable[..., Awaitable[object]]
    sample_rss: Callable[..., Awaitable[object]]
    run_fuzz: Callable[..., Any]
    run_stateful: Callable[..., Any] | None  # None: not available, the phase says so
    write_report: Callable[[BattleRun, Path], list[Path]]
    summary_table: Callable[[BattleRun], str]
    named_only: Sequence[Scenario] = ()  # run by --scenario NAME only (the baseline)


def default_parts() -> Parts:
    """The real parts (imported here: ``lasso battle`` must start without them installed)."""
    from battle import env, fuzz, report, rss, scenarios, stateful, web3load, workload

    return Parts(
        open_env=env.open_battle_env,
        unavailable=env.TargetUnavailable,
        all_scenarios=scenarios.ALL,
        quick_scenarios=scenarios.QUICK,
        endpoint=workload.Endpoint,
        run_requests=workload.run_requests,
        run_subscribers=workload.run_subscribers,
        run_web3=web3load.run_web3,
        sample_rss=rss.sample_rss,
        run_fuzz=fuzz.run_fuzz,
        run_stateful=stateful.run_stateful,
        write_report=report.write_report,
        summary_table=report.summary_table,
        named_only=(scenarios.BASELINE,),
    )


def missing_dependencies() -> list[str]:
    """The harness's extra modules that are not importable here."""
    from importlib.util import find_spec

    return [name for name in REQUIRED_MODULES if find_spec(name) is None]


def select_scenarios(options: Options, parts: Parts) -> list[Scenario]:
    """``--scenario`` names (in the order given), else the quick or the full set."""
    if not options.scenarios:
        return list(parts.quick_scenarios if options.quick else parts.all_scenarios)
    known = {s.name: s for s in (*parts.named_only, *parts.all_scenarios)}
    unknown = [name for name in options.scenarios if name not in known]
    if unknown:
        raise UsageError(f"unknown scenario {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in options.scenarios]


class UsageError(Exception):
    """Bad usage found after parsing (exit 2)."""


async def _maybe(value: Any) -> Any:
    """``value``, awaited if it is awaitable (a part may be sync or async)."""
    return await value if isinstance(value, Awaitable) else value


async def run_battle(
    options: Options, parts: Parts | None = None, progress: Progress | None = None
) -> BattleRun:
    """Run the battle ``options`` describes. Raises ``parts.unavailable`` if the target is
    unreachable."""
    parts = parts or default_parts()
    progress = progress or PlainProgress()
    chosen = select_scenarios(options, parts)
    options = replace(options, out=options.out_dir())
    started = trio.current_time()
    started_utc = datetime.now(UTC).isoformat(timespec="seconds")
    workdir = options.out_dir() / "work"
    async with AsyncExitStack() as stack:
        with progress.phase(f"{options.target} target ({options.chain})") as phase:
            env: EnvLike = await stack.enter_async_context(
                parts.open_env(
                    target=options.target,
                    chain=options.chain,
                    config_path=options.config,
                    workdir=workdir,
                    seed=options.seed,
                    broken=options.break_failover,
                )
            )
            phase.outcome = "ready"
        provenance = await describe(options, env, started_utc)
        fuzz = await _fuzz_phase(options, env, parts, progress)
        results = [await _scenario(s, options, env, parts, progress) for s in chosen]
    return BattleRun(
        provenance=provenance,
        scenarios=tuple(results),
        fuzz=fuzz,
        duration_s=trio.current_time() - started,
        quick=options.quick,
    )


async def _fuzz_phase(
    options: Options, env: EnvLike, parts: Parts, progress: Progress
) -> FuzzResult:
    """Differential fuzzing, then the stateful machine; bounded, a hang or crash a failure."""
    if not options.fuzz:
        return _fuzz_skipped(options, "--no-fuzz")
    if env.chain_data is None or env.oracle_http_url is None:
        return _fuzz_skipped(
            options, f"no seeded chain data on the {options.target} target to draw requests from"
        )
    limit = options.fuzz_budget_s * FUZZ_BOUND
    with progress.phase("fuzz", options.fuzz_budget_s) as phase:
        started = trio.current_time()
        fuzz: FuzzResult | None = None
        with trio.move_on_after(limit):
            try:
                fuzz = await _fuzz_and_stateful(options, env, parts)
            except Exception as exc:  # the gateway would not start, ...: the phase failed
                traceback.print_exception(exc, file=sys.stderr)
                fuzz = _fuzz_failed(options, _describe(exc), trio.current_time() - started)
        if fuzz is None:
            reason = f"the fuzz phase did not finish within {limit:.0f} s (a hang)"
            fuzz = _fuzz_failed(options, reason, trio.current_time() - started)
        failed = len(fuzz.failures) + len(fuzz.stateful_failures)
        phase.outcome = f"{fuzz.examples} examples, {failed} failures"
    return fuzz


async def _fuzz_and_stateful(options: Options, env: EnvLike, parts: Parts) -> FuzzResult:
    async with env.gateway(Recorder()) as gateway:
        fuzz: FuzzResult = await _maybe(
            parts.run_fuzz(
                gateway.http_url,
                env.oracle_http_url,
                env.oracle_ws_url,
                env.chain_data,
                seed=options.seed,
                max_examples=options.examples,
                outdir=options.out_dir() / "fuzz",
                budget_s=options.fuzz_budget_s,
            )
        )
    steps, failures = 0, ()
    if parts.run_stateful is not None:
        steps, failures = await _maybe(
            parts.run_stateful(env, options.seed, options.stateful_steps)
        )
    return msgspec.structs.replace(fuzz, stateful_steps=steps, stateful_failures=tuple(failures))


def _fuzz_skipped(options: Options, reason: str) -> FuzzResult:
    return FuzzResult(options.seed, 0, 0, (), 0.0, skipped=reason)


def _fuzz_failed(options: Options, reason: str, elapsed: float) -> FuzzResult:
    """The phase itself failed (a hang or a crash): one failure saying so."""
    failure = FuzzFailure(
        rule="fuzz phase",
        reason=reason,
        request="",
        node_answer="",
        lasso_answer="",
        saved_as="",
        replay=options.command(),
    )
    return FuzzResult(options.seed, 0, 0, (failure,), elapsed)


async def _scenario(
    scenario: Scenario, options: Options, env: EnvLike, parts: Parts, progress: Progress
) -> ScenarioResult:
    missing = sorted(n.value for n in scenario.needs if not env.has(n))
    if missing:
        reason = f"the {options.target} target has no {', '.join(missing)}"
        progress.line(f"battle: {scenario.name}: skipped: {reason}")
        return _result(scenario, None, [], None, skipped=reason)
    recorder = Recorder()
    aborted: str | None = None
    with progress.phase(scenario.name, scenario.duration_s) as phase:
        try:
            with trio.fail_after(scenario.duration_s + MARGIN_S + GATEWAY_S):
                async with env.gateway(recorder) as gateway:
                    with trio.fail_after(scenario.duration_s + MARGIN_S):
                        await _drive(scenario, options, env, gateway, recorder, parts)
        except Exception as exc:
            if _only(exc, trio.TooSlowError) is not None:
                aborted = f"did not finish within {scenario.duration_s + MARGIN_S:.0f} s (a hang)"
            else:
                traceback.print_exception(exc, file=sys.stderr)
                aborted = _describe(exc)
        recording = recorder.recording()
        slos = compute(recording)
        breaches = evaluate(slos, scenario.thresholds)
        if aborted is not None:
            breaches.append(_aborted(aborted))
        phase.outcome = "pass" if not breaches else f"BREACH ({len(breaches)})"
    return _result(scenario, slos, breaches, recording)


async def _drive(
    scenario: Scenario,
    options: Options,
    env: EnvLike,
    gateway: GatewayLike,
    recorder: Recorder,
    parts: Parts,
) -> None:
    """The scenario's workload, subscribers, log traffic, RSS sampler and chaos, together."""
    duration = scenario.duration_s
    data = env.chain_data
    rng = random.Random(f"{options.seed}/{scenario.name}")
    endpoint = parts.endpoint(gateway.http_url, gateway.ws_url, scenario.name)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            parts.run_requests, endpoint, recorder, scenario.rate, duration, data, rng
        )
        if scenario.web3:
            rps = max(1.0, scenario.rate.rps / 4)
            seed = rng.randrange(2**32)
            nursery.start_soon(parts.run_web3, endpoint, recorder, duration, rps, data, seed)
        if scenario.subscribe:
            nursery.start_soon(parts.run_subscribers, endpoint, recorder, duration, data)
        if options.target == "devnet":
            nursery.start_soon(env.log_traffic, duration)
        nursery.start_soon(parts.sample_rss, gateway.pid, recorder, duration)
        nursery.start_soon(scenario.chaos, gateway.chaos)


def _result(
    scenario: Scenario,
    slos: Any,
    breaches: Sequence[Breach],
    recording: Any,
    skipped: str | None = None,
) -> ScenarioResult:
    return ScenarioResult(
        name=scenario.name,
        summary=scenario.summary,
        duration_s=scenario.duration_s,
        rps=scenario.rate.rps,
        arrival=scenario.rate.arrival.value,
        thresholds=scenario.thresholds,
        slos=slos,
        breaches=tuple(breaches),
        recording=recording,
        skipped=skipped,
    )


def _aborted(reason: str) -> Breach:
    """An aborted scenario is a breach (a hang is an unanswered wait: it counts as timeouts)."""
    return Breach(Threshold("timeouts", "==", 0), None, f"the scenario aborted: {reason}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _only(exc: BaseException, kind: type[Exception]) -> Exception | None:
    """The ``kind`` error inside ``exc`` (maybe nested in exception groups), if that is all."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        found = [_only(e, kind) for e in exc.exceptions]
        if found and all(f is not None for f in found):
            return found[0]
    return None


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m battle",
    parts: Parts | None = None,
    progress: Progress | None = None,
) -> int:
    """Run a battle from the command line; the exit status (0 pass or skipped, 1 breach)."""
    options = parse_options(sys.argv[1:] if argv is None else argv, os.environ, prog=prog)
    print(f"battle: seed {options.seed}; rerun with: {options.command()}", flush=True)
    options = replace(options, out=options.out_dir())
    parts = parts or default_parts()
    try:
        select_scenarios(options, parts)
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    progress = progress or for_stdout()
    try:
        with progress.shown():
            run = trio.run(run_battle, options, parts, progress)
    except KeyboardInterrupt:
        print("battle: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        unavailable = _only(exc, parts.unavailable)
        if unavailable is None:
            raise
        print(f"battle: skipped: {unavailable}", flush=True)
        return 0
    paths = parts.write_report(run, options.out_dir())
    print(parts.summary_table(run), flush=True)
    for path in paths:
        print(f"battle: report: {path}")
    code = 0 if run.passed else 1
    verdict = "passed" if run.passed else "failed (an SLO breach or a fuzz failure)"
    print(f"battle: {verdict}, exit {code}; rerun with: {options.command()}", flush=True)
    return code
