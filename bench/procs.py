"""Child processes for the benchmark: start, wait for ``ready PORT``, stop by PID.

Every process the harness starts goes through :func:`launched` (long-lived
targets and upstreams) or :func:`run_json` (one-shot load generators and
client workers). Both stop the child by its PID on every exit path, Ctrl-C
included, and each child also gets ``PR_SET_PDEATHSIG`` so it dies with the
harness even if the harness itself is killed. Children run in their own
session, so a terminal Ctrl-C reaches only the harness, which then stops them
in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent  # children run ``-m bench.x`` from here
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


def python_module(module: str, *args: object) -> list[str]:
    """The argv that runs ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *(str(a) for a in args)]


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _popen(argv: list[str], stdout: Any, stderr: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        cwd=REPO,
    )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid


def _stderr_tail(log: Any) -> str:
    log.seek(0)
    text: str = log.read().decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-15:])


def _wait_ready(name: str, proc: subprocess.Popen[bytes], log: Any) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"{name}: not ready after {READY_TIMEOUT_S:.0f} s")
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if readable:
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                raise RuntimeError(f"{name} exited before ready:\n{_stderr_tail(log)}")
            line += chunk
    word, _, port = line.decode().strip().partition(" ")
    if word != "ready" or not port.isdigit():
        raise RuntimeError(f"{name}: expected 'ready PORT', got {line!r}")
    return int(port)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited within the grace period."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def launched(name: str, argv: list[str]) -> Iterator[Child]:
    """Run a server that prints ``ready PORT``; stop it when the block exits."""
    with tempfile.TemporaryFile() as log:
        proc = _popen(argv, subprocess.PIPE, log)
        try:
            yield Child(name, proc, _wait_ready(name, proc, log))
            if proc.poll() is not None:
                raise RuntimeError(f"{name} died during the run:\n{_stderr_tail(log)}")
        finally:
            stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()


def run_json(name: str, argv: list[str], timeout_s: float) -> Any:
    """Run a one-shot child to completion and parse the JSON it prints last."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as log:
        proc = _popen(argv, out, log)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name}: still running after {timeout_s:.0f} s") from None
        finally:
            stop(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}):\n{_stderr_tail(log)}")
        out.seek(0)
        return json.loads(out.read().decode().strip().splitlines()[-1])
