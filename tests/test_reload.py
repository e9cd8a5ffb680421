"""Reload attempts on real files: good, bad (every problem logged with its path, the
last-known-good kept), unchanged, restart-only changes, and what /health would show."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

from lasso.config import ConfigProblem, load_settings
from lasso.config.diff import ChainRef
from lasso.reload import (
    ReloadOutcome,
    ReloadState,
    ReloadStatistics,
    Stamp,
    attempt_reload,
    reload_once,
    serve_reloads,
)

GOOD = """
[server]
port = 4000

[circuit_breaker]
failure_threshold = 5

[chains.devnet]
chain_id = 31337
providers = [
  { id = "a", url = "http://a.invalid" },
  { id = "b", url = "http://b.invalid" },
]
"""

BAD = """
[server]
port = 0
max_batchh = 5

[circuit_breaker]
failure_threshold = -1

[chains.devnet]
chain_id = 31337
providers = [
  { id = "a", url = "ftp://a.invalid" },
  { id = "a", url = "http://b.invalid" },
]
"""

BAD_PROBLEMS = [
    "server.port: must be between 1 and 65535, got 0",
    "server.max_batchh: unknown field",
    "circuit_breaker.failure_threshold: must be at least 1, got -1",
    'chains.devnet.providers[0].url: must be a URL with scheme http or https and a host, got "ftp://a.invalid"',
    'chains.devnet.providers[1].id: duplicate provider id "a" (first used at providers[0])',
]

T0 = Stamp("2026-12-05T00:00:00.000+00:00", 100.0)
T1 = Stamp("2026-12-05T00:01:00.000+00:00", 160.0)
T2 = Stamp("2026-12-05T00:02:00.000+00:00", 220.0)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lasso.toml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def state(config: Path) -> ReloadState:
    return ReloadState(load_settings(config, env={}), source=str(config))


def reload(config: Path, state: ReloadState, now: Stamp = T1) -> ReloadStatistics:
    outcome = attempt_reload(config, state, now, env={})
    if outcome.decision == "apply":
        state.applied(outcome)
    return state.statistics()


def reload_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lasso.reload"]


def test_the_start_is_generation_one_with_no_reload_yet(state: ReloadState, config: Path) -> None:
    assert state.statistics() == ReloadStatistics(
        source=str(config), generation=1, last_reload=None, needs_restart=()
    )


def test_a_good_change_is_applied_once_the_caller_confirms(
    config: Path, state: ReloadState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "lasso.reload")
    config.write_text(
        GOOD.replace('  { id = "b", url = "http://b.invalid" },\n', "").replace(
            "failure_threshold = 5", "failure_threshold = 3"
        )
    )
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.decision == "apply"
    assert outcome.generation == 2
    assert outcome.diff is not None and outcome.to_apply is not None
    (change,) = outcome.diff.chains_changed
    assert change.providers_removed == ("b",)
    assert change.live == ("circuit_breaker.failure_threshold",)
    assert state.generation == 1 and state.last is None  # nothing changes until confirmed
    state.applied(outcome)
    assert state.settings is outcome.to_apply
    stats = state.statistics()
    assert stats.generation == 2
    assert stats.last_reload is not None
    assert (stats.last_reload.outcome, stats.last_reload.at) == ("applied", T1.wall)
    assert stats.last_reload.at_monotonic == T1.monotonic
    assert stats.last_reload.problems == ()
    assert (
        stats.last_reload.summary == "chains: 1 changed; providers: 1 removed; 1 live keys changed"
    )
    messages = reload_messages(caplog)
    assert "reload: chains.devnet provider b removed" in messages
    assert "reload: circuit_breaker.failure_threshold changed" in messages
    assert any(m.startswith("config generation 2 applied") for m in messages)
    with pytest.raises(ValueError, match="applied twice"):
        state.applied(outcome)


def test_a_bad_file_logs_every_problem_with_its_path_and_keeps_the_last_known_good(
    config: Path, state: ReloadState, caplog: pytest.LogCaptureFixture
) -> None:
    good = state.settings
    config.write_text(BAD)
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.decision == "rejected"
    assert outcome.to_apply is None
    assert [str(p) for p in outcome.problems] == BAD_PROBLEMS
    assert state.settings is good
    stats = state.statistics()
    assert stats.generation == 1
    assert stats.last_reload is not None
    assert stats.last_reload.outcome == "rejected"
    assert [str(p) for p in stats.last_reload.problems] == BAD_PROBLEMS
    errors = [r for r in caplog.records if r.name == "lasso.reload" and r.levelno == logging.ERROR]
    assert errors[0].getMessage() == (
        f"reload of {config} rejected (5 problems); still serving generation 1"
    )
    assert [r.getMessage() for r in errors[1:]] == [f"reload rejected: {p}" for p in BAD_PROBLEMS]


def test_a_fixed_file_after_a_bad_one_applies_against_the_last_known_good(
    config: Path, state: ReloadState
) -> None:
    config.write_text(BAD)
    assert reload(config, state).generation == 1
    config.write_text(GOOD.replace("failure_threshold = 5", "failure_threshold = 4"))
    stats = reload(config, state, T2)
    assert stats.generation == 2
    assert stats.last_reload is not None
    assert (stats.last_reload.outcome, stats.last_reload.at) == ("applied", T2.wall)
    assert stats.last_reload.problems == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[server\nport = 1",
            "invalid TOML at line 1, column 8: Expected ']' at the end of a table declaration",
        ),
        (
            '[chains.devnet]\nchain_id = 1\nproviders = [{ id = "a", url = "${NOPE}" }]\n',
            "chains.devnet.providers[0].url: environment variable NOPE is not set",
        ),
    ],
)
def test_a_file_problem_without_or_with_a_path_is_one_line(
    config: Path, state: ReloadState, text: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    config.write_text(text)
    outcome = attempt_reload(config, state, T1, env={})
    assert [str(p) for p in outcome.problems] == [problem]
    assert f"reload rejected: {problem}" in reload_messages(caplog)


def test_a_missing_file_is_rejected_and_the_gateway_keeps_its_settings(
    config: Path, state: ReloadState
) -> None:
    config.unlink()
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.decision == "rejected"
    (problem,) = outcome.problems
    assert problem.path == "" and problem.message.startswith(f"cannot read {config}")
    assert state.generation == 1


def test_the_same_file_is_unchanged_and_keeps_the_generation(
    config: Path, state: ReloadState
) -> None:
    config.write_text(GOOD + "\n# a comment\n")
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.decision == "unchanged"
    assert outcome.to_apply is None
    stats = state.statistics()
    assert stats.generation == 1
    assert stats.last_reload is not None
    assert (stats.last_reload.outcome, stats.last_reload.summary) == ("unchanged", "no change")


def test_a_restart_only_change_is_reported_and_not_applied(
    config: Path, state: ReloadState, caplog: pytest.LogCaptureFixture
) -> None:
    config.write_text(GOOD.replace("port = 4000", "port = 4001\nmax_batch = 9"))
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.decision == "apply"
    assert outcome.needs_restart == ("server.port",)
    assert outcome.to_apply is not None
    assert (outcome.to_apply.server.port, outcome.to_apply.server.max_batch) == (4000, 9)
    state.applied(outcome)
    assert state.statistics().needs_restart == ("server.port",)
    assert (
        "reload: server.port changed but needs a restart "
        "(the listening socket is bound once, at start); kept as running"
    ) in reload_messages(caplog)
    # Still listed on the next reload, until a restart; even if that reload is rejected.
    stats = reload(config, state, T2)
    assert stats.last_reload is not None and stats.last_reload.outcome == "unchanged"
    assert stats.needs_restart == ("server.port",)
    config.write_text(BAD)
    assert reload(config, state, T2).needs_restart == ("server.port",)
    # Put back: nothing waits for a restart any more.
    config.write_text(GOOD.replace("port = 4000", "port = 4000\nmax_batch = 9"))
    assert reload(config, state, T2).needs_restart == ()


def test_only_a_restart_only_change_is_unchanged(config: Path, state: ReloadState) -> None:
    config.write_text(GOOD.replace("port = 4000", "port = 4001"))
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.decision == "unchanged"
    assert state.statistics().needs_restart == ("server.port",)


def test_a_failed_apply_keeps_the_last_known_good_and_says_why(
    config: Path, state: ReloadState, caplog: pytest.LogCaptureFixture
) -> None:
    good = state.settings
    config.write_text(
        GOOD
        + '[chains.other]\nchain_id = 2\nproviders = [{ id = "x", url = "http://x.invalid" }]\n'
    )
    outcome = attempt_reload(config, state, T1, env={})
    assert outcome.diff is not None
    assert outcome.diff.chains_added == (ChainRef("default", "other"),)
    state.apply_failed(outcome, "boom")
    assert state.settings is good
    stats = state.statistics()
    assert stats.generation == 1
    assert stats.last_reload is not None
    assert stats.last_reload.outcome == "rejected"
    assert stats.last_reload.problems == (
        ConfigProblem(path="", message="could not apply the new settings: boom"),
    )
    with pytest.raises(ValueError, match="nothing to apply"):
        state.applied(ReloadOutcome(decision="rejected", at=T1, source="x", generation=2))


def test_the_statistics_encode_as_json(config: Path, state: ReloadState) -> None:
    config.write_text(BAD)
    reload(config, state)
    encoded = msgspec.json.decode(msgspec.json.encode(state.statistics()))
    assert encoded["generation"] == 1
    assert encoded["last_reload"]["outcome"] == "rejected"
    assert encoded["last_reload"]["problems"][0] == {
        "path": "server.port",
        "message": "must be between 1 and 65535, got 0",
    }


def test_the_environment_is_read_as_check_config_reads_it(
    config: Path, state: ReloadState, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.write_text(GOOD.replace('"http://b.invalid"', '"${B_URL}"'))
    monkeypatch.setenv("B_URL", "http://b2.invalid")
    outcome = attempt_reload(config, state, T1)
    assert outcome.diff is not None
    assert outcome.diff.chains_changed[0].providers_replaced == ("b",)


def test_a_stamp_now_is_utc_iso() -> None:
    stamp = Stamp.now(5.0)
    assert stamp.monotonic == 5.0
    assert stamp.wall.endswith("+00:00") and "T" in stamp.wall


# -- the shell: one reload per request, in turn ---------------------------------------------


def write(path: Path, text: str) -> None:
    path.write_text(text)


async def test_serve_reloads_handles_each_request_in_turn(
    config: Path, state: ReloadState, autojump_clock: trio.testing.MockClock
) -> None:
    applied: list[int] = []

    async def apply(outcome: ReloadOutcome) -> None:
        await trio.sleep(1)  # the registry starting and draining providers
        applied.append(outcome.generation)

    send, receive = trio.open_memory_channel[None](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_reloads, receive, config, state, apply)
        write(config, GOOD.replace("failure_threshold = 5", "failure_threshold = 4"))
        await send.send(None)
        await send.send(None)  # taken only once the first reload is done: unchanged
        write(config, BAD)
        await send.send(None)
        await send.aclose()
    assert applied == [2]
    assert state.generation == 2
    assert state.last is not None and state.last.outcome == "rejected"
    assert state.last.at_monotonic == 1.0  # virtual time: after the first apply's second


async def test_a_failing_apply_is_recorded_and_the_next_reload_still_runs(
    config: Path, state: ReloadState, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    async def apply(outcome: ReloadOutcome) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("provider a would not start")

    write(config, GOOD.replace("failure_threshold = 5", "failure_threshold = 4"))
    first = await reload_once(config, state, apply)
    assert first.decision == "apply" and state.generation == 1
    assert state.last is not None
    assert [str(p) for p in state.last.problems] == [
        "could not apply the new settings: RuntimeError: provider a would not start"
    ]
    assert "applying generation 2 failed" in reload_messages(caplog)
    second = await reload_once(config, state, apply)  # the same file, tried again
    assert second.decision == "apply" and state.generation == 2
    assert state.last.outcome == "applied"


async def test_a_cancelled_apply_is_not_a_failed_reload(config: Path, state: ReloadState) -> None:
    async def apply(outcome: ReloadOutcome) -> None:
        await trio.sleep_forever()

    write(config, GOOD.replace("failure_threshold = 5", "failure_threshold = 4"))
    with trio.move_on_after(0.01):
        await reload_once(config, state, apply)
    assert (state.generation, state.last) == (1, None)


async def test_a_real_sighup_reloads(config: Path, state: ReloadState) -> None:
    applied = trio.Event()

    async def apply(outcome: ReloadOutcome) -> None:
        applied.set()

    write(config, GOOD.replace("failure_threshold = 5", "failure_threshold = 4"))
    with trio.open_signal_receiver(signal.SIGHUP) as hups:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_reloads, hups, config, state, apply)
            os.kill(os.getpid(), signal.SIGHUP)
            with trio.fail_after(10):
                await applied.wait()
            nursery.cancel_scope.cancel()
    assert state.generation == 2
