"""First contact with the command line: --version, help for everything, --log-level
anywhere, and a busy port as one clear line (issue 11)."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import lasso
from lasso.cli import main
from lasso.cli_grammar import build_parser as _parser

REPO = Path(__file__).resolve().parent.parent
#: Subcommands whose options are lasso's own (battle's are the harness's).
COMMANDS = ("serve", "up", "reload", "check-config", "devnet", "probe")
MINIMAL = """\
[chains.devnet]
chain_id = 31337
[[chains.devnet.providers]]
id = "a"
url = "http://127.0.0.1:9/"
"""


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"lasso {lasso.__version__}"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_prose_and_names_every_option(
    command: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text
    parser = _parser() if command is None else _subparsers()[command]
    for action in parser._actions:
        assert action.help not in (None, argparse.SUPPRESS), (command, action.dest)
        for option in action.option_strings:
            assert option in text, (command, option)
    if command is not None:
        assert "--log-level" in text


def test_every_subcommand_has_a_summary() -> None:
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            assert set(helps) == {*COMMANDS, "battle"}
            assert all(helps.values())


def test_log_level_is_taken_after_the_subcommand_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    config = tmp_path / "c.toml"
    config.write_text(MINIMAL)
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        root.handlers.clear()
        assert main(["check-config", str(config), "--log-level", "debug"]) == 0
        assert root.level == logging.DEBUG
        root.handlers.clear()
        assert main(["--log-level", "error", "check-config", str(config)]) == 0
        assert root.level == logging.ERROR
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv",
    [["--log-level", "loud", "check-config", "x"], ["check-config", "x", "--log-level", "loud"]],
)
def test_a_bad_log_level_is_one_clear_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "loud" in err[0] and "debug" in err[0] and "--log-level" in err[0]


# --- a busy port: one clear line, exit 1, whatever is busy -------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lasso(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "minimal.toml"
    config.write_text(MINIMAL)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LASSO_LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-m", "lasso", *args, "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_one_clear_line(done: subprocess.CompletedProcess[str], port: int) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, done.stderr
    assert str(port) in done.stderr


def _anvils_on(port: int) -> str:
    found = subprocess.run(
        ["pgrep", "-af", f"anvil.*--port {port}( |$)"], capture_output=True, text=True
    )
    return found.stdout.strip()


@pytest.mark.slow
def test_serve_on_a_busy_port_is_one_clear_line(tmp_path: Path, busy_port: int) -> None:
    done = _lasso(tmp_path, "serve", "--port", str(busy_port))
    _assert_one_clear_line(done, busy_port)
    assert f"lasso: cannot listen on 127.0.0.1:{busy_port}: address already in use" in done.stderr


@pytest.mark.slow
def test_up_with_a_busy_devnet_port_is_one_clear_line(tmp_path: Path, busy_port: int) -> None:
    done = _lasso(tmp_path, "up", "--nodes", "1", "--port-base", str(busy_port), "--port", "0")
    _assert_one_clear_line(done, busy_port)
    assert "devnet" in done.stderr


@pytest.mark.slow
def test_up_with_a_busy_gateway_port_is_one_clear_line_and_no_anvil_left(
    tmp_path: Path, busy_port: int
) -> None:
    devnet_port = _free_port()
    done = _lasso(
        tmp_path, "up", "--nodes", "1", "--port-base", str(devnet_port), "--port", str(busy_port)
    )
    _assert_one_clear_line(done, busy_port)
    assert f"lasso: cannot listen on 127.0.0.1:{busy_port}: address already in use" in done.stderr
    assert _anvils_on(devnet_port) == ""


@pytest.mark.slow
@pytest.mark.integration
def test_up_whose_gateway_port_a_devnet_node_takes_stops_the_devnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The port is free when checked, then node 0 takes it (--port = --port-base): the
    gateway's failure is still one line, and every node is stopped on the way out."""
    config = tmp_path / "minimal.toml"
    config.write_text(MINIMAL)
    port = _free_port()
    argv = ["up", "--config", str(config), "--nodes", "2", "--port-base", str(port)]
    assert main([*argv, "--port", str(port), "--log-level", "warning"]) == 1
    out, err = capsys.readouterr()
    assert f"node 0  http://127.0.0.1:{port}" in out  # the devnet did start
    assert err.strip() == f"lasso: cannot listen on 127.0.0.1:{port}: address already in use"
    assert _anvils_on(port) == ""
    assert _anvils_on(port + 1) == ""


@pytest.mark.slow
def test_a_port_taken_between_the_check_and_the_bind_is_still_one_clear_line(
    tmp_path: Path,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The race check_listen cannot close: the port is taken after it looked. The front
    end's own bind failure is the same ListenError, not a nursery's traceback."""
    monkeypatch.setattr("lasso.daemon.check_listen", lambda host, port: None)
    config = tmp_path / "minimal.toml"
    config.write_text(MINIMAL)
    argv = ["serve", "--config", str(config), "--port", str(busy_port), "--log-level", "warning"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"lasso: cannot listen on 127.0.0.1:{busy_port}: address already in use"
