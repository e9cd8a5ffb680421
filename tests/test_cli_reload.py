"""``lasso reload`` and ``--pid-file``: the signal reaches a running process, and every way
it cannot is one clear line with its own exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lasso.cli import EXIT_NO_PID, EXIT_NOT_SIGNALLED, main
from lasso.pidfile import PidError, is_lasso, read_pid_file, signal_reload, write_pid_file

REPO = Path(__file__).resolve().parent.parent

#: Stands in for ``lasso serve``: its file is named ``lasso``, so its command line is a
#: lasso's; it says "HUP" for each SIGHUP and ends when its stdin closes (or after 30 s).
DUMMY = """\
import signal, sys
signal.signal(signal.SIGHUP, lambda *_: print("HUP", flush=True))
signal.alarm(30)
print("ready", flush=True)
sys.stdin.read()
"""


def _no_such_pid() -> int:
    """A pid no process has: the kernel hands out pids below pid_max."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


@pytest.fixture
def dummy(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    script = tmp_path / "lasso"
    script.write_text(DUMMY)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "ready\n"
    with proc, proc.stdout:
        yield proc
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0


def lasso(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lasso", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )


# -- the real command, in a subprocess --------------------------------------------------------


@pytest.mark.slow
def test_reload_by_pid_sends_sighup(dummy: subprocess.Popen[str]) -> None:
    done = lasso("reload", "--pid", str(dummy.pid))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"lasso reload: sent SIGHUP to pid {dummy.pid}; the outcome is in its log and /health\n"
    )
    assert dummy.stdout is not None and dummy.stdout.readline() == "HUP\n"


@pytest.mark.slow
def test_reload_by_pid_file_sends_sighup(dummy: subprocess.Popen[str], tmp_path: Path) -> None:
    pid_file = tmp_path / "lasso.pid"
    pid_file.write_text(f"{dummy.pid}\n")
    assert lasso("reload", "--pid-file", str(pid_file)).returncode == 0
    assert dummy.stdout is not None and dummy.stdout.readline() == "HUP\n"


@pytest.mark.slow
def test_a_bad_pid_file_is_one_clear_line(tmp_path: Path) -> None:
    pid_file = tmp_path / "lasso.pid"
    pid_file.write_text("not a pid\n")
    done = lasso("reload", "--pid-file", str(pid_file))
    assert done.returncode == EXIT_NO_PID
    assert done.stderr == (
        f"lasso reload: pid file {pid_file} does not hold a process id (it holds 'not a pid')\n"
    )
    assert done.stdout == ""


@pytest.mark.slow
def test_serve_writes_its_pid_file_and_removes_it_at_exit(tmp_path: Path) -> None:
    config = tmp_path / "lasso.toml"
    config.write_text(
        '[chains.devnet]\nchain_id = 31337\nproviders = [{ id = "a", url = "http://127.0.0.1:9" }]\n'
    )
    pid_file = tmp_path / "run" / "lasso.pid"
    pid_file.parent.mkdir()
    serve = subprocess.Popen(
        [sys.executable, "-m", "lasso", "serve", "--config", str(config), "--port", "0",
         "--pid-file", str(pid_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        assert "listening on" in serve.stdout.readline()
        assert read_pid_file(pid_file) == serve.pid
        assert is_lasso(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=20) == 0
        assert serve.stdout is not None
        serve.stdout.close()
    assert not pid_file.exists()
    assert list(pid_file.parent.iterdir()) == []  # no temporary left behind


# -- every failure, in-process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "holds"),
    [("", "nothing"), ("abc", "'abc'"), ("0", "'0'"), ("-5", "'-5'"), ("12 34", "'12 34'")],
)
def test_a_pid_file_without_a_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, holds: str
) -> None:
    pid_file = tmp_path / "lasso.pid"
    pid_file.write_text(content)
    assert main(["reload", "--pid-file", str(pid_file)]) == EXIT_NO_PID
    err = capsys.readouterr().err
    assert (
        err == f"lasso reload: pid file {pid_file} does not hold a process id (it holds {holds})\n"
    )


def test_a_missing_pid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid_file = tmp_path / "lasso.pid"
    assert main(["reload", "--pid-file", str(pid_file)]) == EXIT_NO_PID
    assert capsys.readouterr().err == (
        f"lasso reload: cannot read pid file {pid_file}: No such file or directory\n"
    )


def test_no_pid_given(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LASSO_PID_FILE", raising=False)
    assert main(["reload"]) == EXIT_NO_PID
    assert capsys.readouterr().err == (
        "lasso reload: give --pid N or --pid-file PATH (or set LASSO_PID_FILE)\n"
    )


def test_the_pid_file_may_come_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "env.pid"
    monkeypatch.setenv("LASSO_PID_FILE", str(pid_file))
    assert main(["reload"]) == EXIT_NO_PID
    assert str(pid_file) in capsys.readouterr().err


def test_no_such_process(capsys: pytest.CaptureFixture[str]) -> None:
    pid = _no_such_pid()
    assert main(["reload", "--pid", str(pid)]) == EXIT_NOT_SIGNALLED
    assert capsys.readouterr().err == (
        f"lasso reload: no process with pid {pid} (is lasso serve running?)\n"
    )


def test_a_process_that_is_not_lasso_is_not_signalled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as sleeper:
        try:
            assert main(["reload", "--pid", str(sleeper.pid)]) == EXIT_NOT_SIGNALLED
            assert sleeper.poll() is None  # SIGHUP would have ended it
        finally:
            sleeper.kill()
    assert capsys.readouterr().err == (
        f"lasso reload: pid {sleeper.pid} is not a lasso process (a stale pid file?); "
        f"kill -HUP {sleeper.pid} signals it anyway\n"
    )


def test_not_permitted(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("lasso.pidfile.is_lasso", lambda pid: True)
    monkeypatch.setattr(os, "kill", refuse)
    assert main(["reload", "--pid", "1"]) == EXIT_NOT_SIGNALLED
    assert capsys.readouterr().err == (
        "lasso reload: not permitted to signal pid 1 (run as the user lasso runs as)\n"
    )


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_pid_must_be_a_positive_integer(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["reload", "--pid", bad])
    assert exited.value.code == 2
    assert f"argument --pid: not a process id: '{bad}'" in capsys.readouterr().err


def test_pid_and_pid_file_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["reload", "--pid", "5", "--pid-file", "x"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_signal_reload_refuses_pid_zero_and_below() -> None:
    for pid in (0, -1):  # kill(0) / kill(-1) would signal a whole group, or everyone
        with pytest.raises(PidError, match="is not a process id"):
            signal_reload(pid)


def test_serve_help_documents_the_signals(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "SIGHUP" in out and "reload the settings file" in out
    assert "systemctl reload lasso" in out and "--pid-file" in out


# -- the pid file --------------------------------------------------------------------------


def test_write_pid_file_holds_our_pid_for_the_block(tmp_path: Path) -> None:
    pid_file = tmp_path / "lasso.pid"
    with write_pid_file(pid_file):
        assert pid_file.read_text() == f"{os.getpid()}\n"
    assert not pid_file.exists()
    with write_pid_file(None):
        pass


def test_write_pid_file_leaves_a_file_another_process_took_over(tmp_path: Path) -> None:
    pid_file = tmp_path / "lasso.pid"
    with write_pid_file(pid_file):
        pid_file.write_text("12345\n")
    assert pid_file.read_text() == "12345\n"


def test_write_pid_file_replaces_a_stale_one(tmp_path: Path) -> None:
    pid_file = tmp_path / "lasso.pid"
    pid_file.write_text(f"{_no_such_pid()}\n")
    with write_pid_file(pid_file):
        assert read_pid_file(pid_file) == os.getpid()


def test_write_pid_file_refuses_a_running_lasso(
    tmp_path: Path, dummy: subprocess.Popen[str]
) -> None:
    pid_file = tmp_path / "lasso.pid"
    pid_file.write_text(f"{dummy.pid}\n")
    running = f"lasso is already running as pid {dummy.pid}"
    with pytest.raises(PidError, match=running), write_pid_file(pid_file):
        pass
    assert pid_file.read_text() == f"{dummy.pid}\n"


def test_serve_with_an_unwritable_pid_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lasso.toml"
    config.write_text(
        '[chains.d]\nchain_id = 1\nproviders = [{ id = "a", url = "http://a.invalid" }]\n'
    )
    missing_dir = tmp_path / "no" / "lasso.pid"
    assert main(["serve", "--config", str(config), "--pid-file", str(missing_dir)]) == 1
    err = capsys.readouterr().err
    assert err == f"lasso: cannot write pid file {missing_dir}: No such file or directory\n"


def test_is_lasso_reads_the_command_line(dummy: subprocess.Popen[str]) -> None:
    assert is_lasso(dummy.pid) is True
    assert is_lasso(os.getpid()) is False  # pytest
    assert is_lasso(_no_such_pid()) is False
