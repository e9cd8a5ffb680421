"""Finding, launching and reaping anvil processes.

``node_modules/.bin/anvil`` (what ``make install`` puts there via npm) is a
Node.js shim that spawns the native binary as its own child, forwards only
SIGINT/SIGTERM, and always exits 0. So :func:`find_anvil` prefers the native
binary inside the platform package next to it, and every node still runs in
its own process group: shutdown signals the whole group (SIGTERM, a bounded
wait, then SIGKILL), which leaves no orphan even when a wrapper is in between.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import trio

from lasso.devnet.control import ControlClient
from lasso.devnet.errors import DevnetError
from lasso.devnet.guardian import Guardian

ANVIL_ENV = "LASSO_ANVIL"
READY_DEADLINE_S = 15.0
READY_POLL_S = 0.005
PROBE_DEADLINE_S = 0.25
TERMINATE_GRACE_S = 3.0
START_ATTEMPTS = 5
HOST = "127.0.0.1"

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def find_anvil() -> str:
    """The anvil executable to run.

    ``$LASSO_ANVIL`` wins when set (an explicit choice). Otherwise the pinned
    install in ``node_modules`` of the current directory, then of the
    repository this package lives in.
    """
    override = os.environ.get(ANVIL_ENV)
    if override:
        if not _is_executable(Path(override)):
            raise DevnetError(f"${ANVIL_ENV} is {override!r}, which is not an executable file")
        return override
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        found = _installed_anvil(root / "node_modules")
        if found is not None:
            return str(found)
    raise DevnetError(
        "anvil not found: run `make install` to install the pinned anvil into "
        f"./node_modules, or set ${ANVIL_ENV} to an anvil executable"
    )


def _installed_anvil(node_modules: Path) -> Path | None:
    arch = _ARCHES.get(platform.machine().lower(), platform.machine().lower())
    suffix = ".exe" if sys.platform == "win32" else ""
    package = node_modules / "@foundry-rs" / f"anvil-{sys.platform}-{arch}"
    for candidate in (package / "bin" / f"anvil{suffix}", node_modules / ".bin" / "anvil"):
        if _is_executable(candidate):
            return candidate
    return None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@dataclass(frozen=True)
class AnvilLaunch:
    """How to start one node. ``fixed`` ports are used as given, never re-picked."""

    index: int
    port: int
    fixed: bool
    chain_id: int
    genesis_timestamp: int
    prune_history: int | None


@dataclass(frozen=True)
class RunningAnvil:
    port: int
    pid: int


def anvil_command(anvil: str, launch: AnvilLaunch, port: int) -> list[str]:
    command = [anvil, "--no-mining", "--silent", "--host", HOST, "--port", str(port)]
    command += ["--chain-id", str(launch.chain_id), "--timestamp", str(launch.genesis_timestamp)]
    if launch.prune_history is not None:
        command.append(f"--prune-history={launch.prune_history}")
    return command


def pick_free_ports(count: int) -> list[int]:
    """Distinct ports the kernel just called free (all held open until all are read)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def check_port_free(port: int) -> None:
    """Fail fast, with a clear message, when a fixed port already has a listener."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like anvil's own listener, ignore TIME_WAIT leftovers of a previous run.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise DevnetError(f"port {port} on {HOST} is not free: {exc}") from exc


@dataclass(frozen=True)
class AnvilExit:
    """A node that was ready and then exited on its own."""

    pid: int
    returncode: int | None
    stderr: str


async def run_anvil(
    anvil: str,
    launch: AnvilLaunch,
    control: ControlClient,
    guardian: Guardian,
    *,
    task_status: trio.TaskStatus[RunningAnvil] = trio.TASK_STATUS_IGNORED,
) -> AnvilExit:
    """Run one node; report it as started once it answers; return when it exits.

    A picked port can be taken between picking and anvil's bind, so a node
    that exits before answering is retried on a fresh port. A node that never
    answers raises DevnetError. Cancelling stops the node. ``guardian`` stops
    it if this process dies without doing so.
    """
    port = launch.port
    failure = "no attempt made"
    for _ in range(1 if launch.fixed else START_ATTEMPTS):
        attempt = _Attempt(anvil_command(anvil, launch, port), guardian)
        await attempt.run(control, launch.chain_id, port, task_status)
        if attempt.state == "ready":
            assert attempt.pid is not None
            return AnvilExit(attempt.pid, attempt.returncode, attempt.stderr())
        failure = f"port {port}: {attempt.state} (code {attempt.returncode}): {attempt.stderr()}"
        if attempt.state == "timed out":
            break  # a wedged start, not a port collision: another port will not help
        port = pick_free_ports(1)[0]
    raise DevnetError(f"anvil node {launch.index} did not start ({failure})")


class _Attempt:
    """One anvil process: started, probed until ready, then run until it exits."""

    def __init__(self, command: list[str], guardian: Guardian) -> None:
        self.command = command
        self._guardian = guardian
        self.state: _ReadyState = "not started"
        self.pid: int | None = None
        self.returncode: int | None = None
        self._stderr: list[bytes] = []

    async def run(
        self,
        control: ControlClient,
        chain_id: int,
        port: int,
        task_status: trio.TaskStatus[RunningAnvil],
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(
                    _run_in_own_group, self.command, self._stderr
                )
                self.pid = process.pid
                self._guardian.watch(process.pid)
                self.state = await _wait_ready(control, f"http://{HOST}:{port}", process, chain_id)
                if self.state == "ready":
                    task_status.started(RunningAnvil(port, process.pid))
                else:
                    nursery.cancel_scope.cancel()
            self.returncode = process.returncode
        finally:
            if self.pid is not None:
                # The leader is reaped by now (its pid is also its group's id,
                # which the kernel does not reuse while the group has members):
                # sweep the group for anything a wrapper left behind.
                signal_group(self.pid, signal.SIGKILL)
                self._guardian.forget(self.pid)

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace").strip() or "no output"


_ReadyState = Literal[
    "not started", "ready", "exited before answering", "another server answered", "timed out"
]


async def _wait_ready(
    control: ControlClient, url: str, process: trio.Process, chain_id: int
) -> _ReadyState:
    """Probe a starting node until it answers ``eth_chainId``, exits, or the deadline passes.

    Each probe has its own short deadline: on a port collision the probe may
    reach a foreign server that never answers, while our process has exited.
    """
    with trio.move_on_after(READY_DEADLINE_S):
        while process.returncode is None:
            answer = None
            with trio.move_on_after(PROBE_DEADLINE_S), contextlib.suppress(DevnetError):
                answer = await control.call(url, "eth_chainId", [])
            if answer is None:
                await trio.sleep(READY_POLL_S)
                continue
            if process.returncode is not None or answer != hex(chain_id):
                return "another server answered"
            return "ready"
        return "exited before answering"
    return "timed out"


async def _run_in_own_group(
    command: list[str],
    stderr: list[bytes],
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    completed = await trio.run_process(
        command,
        check=False,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        capture_stderr=True,
        start_new_session=True,
        deliver_cancel=_terminate_group,
        task_status=task_status,
    )
    stderr.append(completed.stderr)


async def _terminate_group(process: trio.Process) -> None:
    """SIGTERM the node's process group, wait a bounded time, then SIGKILL it.

    SIGCONT after SIGTERM: a node stopped by SIGSTOP (a hang injected by a
    test) acts on its pending SIGTERM only once it runs again.
    """
    signal_group(process.pid, signal.SIGTERM)
    signal_group(process.pid, signal.SIGCONT)
    with trio.move_on_after(TERMINATE_GRACE_S):
        await process.wait()
    signal_group(process.pid, signal.SIGKILL)


def signal_group(pgid: int, signum: signal.Signals) -> None:
    """Signal a node's whole process group (its pid is the group id); gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
