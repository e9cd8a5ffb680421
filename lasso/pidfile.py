"""The pid file of ``lasso serve --pid-file``, and finding the process ``lasso reload`` signals.

``write_pid_file(path)`` writes this process's id at start (atomically, by
rename) and removes the file at exit, unless another process has written its
own id there since. It refuses to start over a pid file naming a live ``lasso``
process, so two daemons cannot share one file.

``signal_reload(pid)`` sends SIGHUP, the reload signal, to a running ``lasso``.
Every failure is a ``PidError`` whose message is one line for the operator.
A pid file can outlive its process and the pid be reused, so a process is
signalled only if its command line shows it is a ``lasso`` (where ``/proc``
can tell; elsewhere the check is skipped).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PidError", "is_lasso", "read_pid_file", "signal_reload", "write_pid_file"]

#: What ``argv`` holds for a lasso daemon: ``lasso serve``, ``python -m lasso serve``.
_LASSO_NAMES = frozenset({"lasso", "lasso.cli", "lasso.__main__"})
_PROC = Path("/proc")


class PidError(Exception):
    """A pid file or process that cannot be used; ``str()`` is one line."""


def read_pid_file(path: str | os.PathLike[str]) -> int:
    """The process id in the pid file at ``path``."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise PidError(f"cannot read pid file {os.fspath(path)}: {reason}") from None
    if not text.isdigit() or int(text) < 1:
        shown = repr(text[:40]) if text else "nothing"
        raise PidError(f"pid file {os.fspath(path)} does not hold a process id (it holds {shown})")
    return int(text)


def is_lasso(pid: int) -> bool | None:
    """Whether process ``pid`` runs lasso; None where the system cannot tell."""
    try:
        argv = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None if not _PROC.joinpath("self").exists() else False
    except OSError:
        return None
    return any(os.path.basename(arg.decode(errors="replace")) in _LASSO_NAMES for arg in argv)


def signal_reload(pid: int) -> None:
    """Send SIGHUP to the lasso process ``pid``."""
    if pid < 1:
        raise PidError(f"{pid} is not a process id")
    if _PROC.joinpath("self").exists() and not _PROC.joinpath(str(pid)).exists():
        raise PidError(f"no process with pid {pid} (is lasso serve running?)")
    if is_lasso(pid) is False:
        raise PidError(
            f"pid {pid} is not a lasso process (a stale pid file?); "
            f"kill -HUP {pid} signals it anyway"
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise PidError(f"no process with pid {pid} (is lasso serve running?)") from None
    except PermissionError:
        raise PidError(
            f"not permitted to signal pid {pid} (run as the user lasso runs as)"
        ) from None


@contextmanager
def write_pid_file(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Hold a pid file at ``path`` for the block; ``None`` writes nothing."""
    if path is None:
        yield
        return
    target = Path(path)
    mine = os.getpid()
    _refuse_if_running(target, mine)
    temporary = target.with_name(f".{target.name}.{mine}.tmp")
    try:
        temporary.write_text(f"{mine}\n", encoding="ascii")
        temporary.replace(target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise PidError(f"cannot write pid file {target}: {error.strerror or error}") from None
    try:
        yield
    finally:
        _remove_if_mine(target, mine)


def _refuse_if_running(target: Path, mine: int) -> None:
    try:
        other = read_pid_file(target)
    except PidError:
        return  # absent or unreadable: ours to write
    if other != mine and is_lasso(other):
        raise PidError(f"lasso is already running as pid {other} (pid file {target})")


def _remove_if_mine(target: Path, mine: int) -> None:
    try:
        if read_pid_file(target) == mine:
            target.unlink()
    except (PidError, OSError):
        pass  # gone or taken over: not ours to remove
