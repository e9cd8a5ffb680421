"""The parent of a group of workers: one listening socket, N supervised processes.

``lasso serve --workers N`` (``server.workers``, N > 1) runs this instead of the gateway.
The parent binds the listening socket once and every worker inherits it
(``pass_fds``): the kernel queues connections once, and whichever worker accepts first
serves it. Why not SO_REUSEPORT: each worker would own a queue of its own, and a
worker that dies loses the connections waiting in its queue (reset), where a shared
queue keeps them for its siblings; the kernel's hash spreads connections evenly by
count, not by load, so one busy worker keeps getting its share; port 0 would give
each worker a different port; and any process of the same user could bind the port
too and take a share of the traffic. An idle worker accepting first balances by load.

The parent serves nothing itself. It:

- restarts a worker that exits, after a backoff (``lasso.core.backoff``, attempts
  reset once a worker stayed up ``stable_s``), and kills (then restarts) a worker that
  stops pinging (a wedged event loop) or never becomes ready;
- forwards SIGHUP to every worker (each re-reads the same settings file);
- on SIGTERM, SIGINT or SIGQUIT: closes its copy of the socket, forwards SIGTERM, and
  waits for every worker to drain (each has ``shutdown_grace_ms``; after that and a
  margin, SIGKILL); exits 0;
- speaks to systemd for the group (workers never see ``$NOTIFY_SOCKET``): READY=1 once
  every worker is ready, WATCHDOG=1 only while every worker pinged recently, a
  STATUS= line with the count of workers up, STOPPING=1.

The bookkeeping and decisions are in :mod:`lasso.core.workers`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import trio

import lasso
from lasso.config import ConfigError, Settings, load_settings
from lasso.core.backoff import Backoff
from lasso.core.workers import PING_S, WorkerTable
from lasso.daemon import _banner, _shutdown_on_signal, bind_shared_socket
from lasso.sdnotify import SdNotify
from lasso.workers import worker as env

__all__ = ["RESTART_BACKOFF", "run_workers"]

log = logging.getLogger("lasso.workers")

#: A worker's command: SIGHUP is ignored from its first line until its gateway installs
#: its own handler (the default action would end a worker still importing, when the
#: parent forwards a reload to the group).
WORKER_MAIN = (
    "import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
    "from lasso.workers.worker import main; raise SystemExit(main())"
)
#: The pause before restarting a worker that exited (attempt 0: ~0.1 s).
RESTART_BACKOFF = Backoff(base_s=0.1, cap_s=10.0)
#: A worker that is not ready this long after its start is killed and restarted.
START_TIMEOUT_S = 60.0
#: Beyond ``shutdown_grace_ms``: how long a stopping worker may take before SIGKILL.
STOP_MARGIN_S = 5.0
#: Seconds between the parent's status lines (and its checks for silent workers).
CHECK_EVERY_S = PING_S


class _Group:
    def __init__(
        self,
        count: int,
        config_path: str,
        listener: socket.socket,
        directory: str,
        log_level: str | None,
    ) -> None:
        self.table = WorkerTable(count)
        self.config_path = config_path
        self.listener = listener
        self.directory = directory
        self.log_level = log_level
        #: The workers' drain time, kept as the settings file says at the last reload
        #: (the parent waits that long, plus a margin, before SIGKILL).
        self.grace_s = 0.0
        self.processes: dict[int, trio.Process] = {}
        self.stopping = False
        self.rng = random.Random()
        self.all_ready = trio.Event()
        #: Set once the group is stopping and no worker process is left.
        self.exited = trio.Event()

    def spawn_args(self, index: int, control_fd: int) -> tuple[list[str], dict[str, str]]:
        environ = dict(os.environ)
        package_root = str(Path(lasso.__file__).resolve().parent.parent)
        paths = [package_root, *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))]
        environ["PYTHONPATH"] = os.pathsep.join(paths)
        environ.update(
            {
                env.ENV_CONFIG: self.config_path,
                env.ENV_LISTEN_FD: str(self.listener.fileno()),
                env.ENV_CONTROL_FD: str(control_fd),
                env.ENV_INDEX: str(index),
                env.ENV_COUNT: str(len(self.table.slots)),
                env.ENV_DIR: self.directory,
            }
        )
        if self.log_level is not None:
            environ[env.ENV_LOG_LEVEL] = self.log_level
        return [sys.executable, "-c", WORKER_MAIN], environ

    async def run_slot(self, index: int) -> None:
        """Run worker ``index`` until the group stops, restarting it when it exits."""
        while True:
            await self._run_once(index)
            if self._stopped():
                return
            attempt = self.table.exited(index, trio.current_time())
            delay = RESTART_BACKOFF.delay(attempt, self.rng)
            log.warning("worker %d exited; restarting in %.2f s", index, delay)
            await trio.sleep(delay)

    async def _run_once(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours:
            with theirs:
                argv, environ = self.spawn_args(index, theirs.fileno())
                process = await trio.lowlevel.open_process(
                    argv,
                    env=environ,
                    pass_fds=(self.listener.fileno(), theirs.fileno()),
                    stdin=subprocess.DEVNULL,
                )
            self.processes[index] = process
            self.table.spawned(index, process.pid, trio.current_time())
            if self.stopping:  # started while the stop signal went out
                process.send_signal(signal.SIGTERM)
            log.info("worker %d started (pid %d)", index, process.pid)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        self._read_control, index, trio.socket.from_stdlib_socket(ours)
                    )
                    await process.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self.processes.pop(index, None)
                if self.stopping and not self.processes:
                    self.exited.set()
        log.log(
            logging.INFO if self.stopping else logging.WARNING,
            "worker %d (pid %d) ended with %s",
            index,
            process.pid,
            _describe_exit(process.returncode),
        )

    async def _read_control(self, index: int, ctl: trio.socket.SocketType) -> None:
        buffer = b""
        while True:
            try:
                data = await ctl.recv(4096)
            except OSError:
                return
            if not data:
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            now = trio.current_time()
            for line in lines:
                if line == b"ready":
                    log.info("worker %d ready", index)
                    if self.table.ready(index, now):
                        self.all_ready.set()
                else:
                    self.table.pinged(index, now)

    def reread_grace(self) -> None:
        """After a SIGHUP: the workers' new ``shutdown_grace_ms``, if the file is valid (a
        worker keeps its last-known-good otherwise, and so does the parent)."""
        with suppress(ConfigError):  # each worker logs the problems, keeps the last good file
            self.grace_s = load_settings(self.config_path).server.shutdown_grace_ms / 1000

    def _stopped(self) -> bool:
        return self.stopping  # set by _stop while a worker ran

    def signal_all(self, signum: int) -> None:
        for process in list(self.processes.values()):
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    process.send_signal(signum)

    def kill_silent(self) -> None:
        for pid in self.table.stale(trio.current_time(), START_TIMEOUT_S):
            for index, process in list(self.processes.items()):
                if process.pid == pid and process.returncode is None:
                    log.warning("worker %d (pid %d) is not answering; killing it", index, pid)
                    process.kill()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return signal.Signals(-code).name
    return f"exit status {code}"


async def run_workers(
    settings: Settings,
    count: int,
    *,
    host: str | None,
    port: int | None,
    config_path: str,
    log_level: str | None = None,
) -> None:
    """``lasso serve --workers N``: bind once, supervise N workers until a stop signal."""
    server = settings.server
    host = host or server.host
    listener = bind_shared_socket(
        host, server.port if port is None else port, backlog=_backlog(server.max_connections)
    )
    directory = tempfile.mkdtemp(prefix="lasso-workers-")  # mode 0700: the private sockets
    group = _Group(count, config_path, listener, directory, log_level)
    group.grace_s = server.shutdown_grace_ms / 1000
    try:
        with SdNotify.take_from_environ() as notify:  # workers must not inherit it
            async with (
                _shutdown_on_signal() as shutdown,
                _forward_reloads(group),
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(_announce, group, settings, listener, notify, shutdown)
                nursery.start_soon(_watch, group, notify, shutdown)
                async with trio.open_nursery() as slots:
                    for index in range(count):
                        slots.start_soon(group.run_slot, index)
                    await shutdown.wait()
                    await _stop(group, notify)
                    slots.cancel_scope.cancel(reason="stopped")  # any restart backoff
                nursery.cancel_scope.cancel(reason="stopped")
    finally:
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


def _backlog(max_connections: int) -> int:
    return min(max(100, max_connections), 4096)


@asynccontextmanager
async def _forward_reloads(group: _Group) -> AsyncIterator[None]:
    """Every SIGHUP, to every worker: each re-reads the settings file."""
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:

            async def forward() -> None:
                async for _ in signals:
                    log.info("SIGHUP: reloading %d workers", len(group.processes))
                    group.signal_all(signal.SIGHUP)
                    group.reread_grace()

            nursery.start_soon(forward)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()


async def _announce(
    group: _Group,
    settings: Settings,
    listener: socket.socket,
    notify: SdNotify,
    shutdown: trio.Event,
) -> None:
    await group.all_ready.wait()
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    binds = [f"http://{shown}:{port}"]
    count = len(group.table.slots)
    print(_banner(settings, binds, reloadable=True), flush=True)
    print(f"{count} worker processes share the port (server.workers)", flush=True)
    if not shutdown.is_set():
        notify.ready(f"serving: {group.table.status()}")


async def _watch(group: _Group, notify: SdNotify, shutdown: trio.Event) -> None:
    """Silent workers killed; systemd's watchdog pinged only while every worker is well."""
    watchdog_s = notify.watchdog_s
    last_ping = last_status = -1e9
    while not shutdown.is_set():
        now = trio.current_time()
        group.kill_silent()
        if watchdog_s is not None and now - last_ping >= watchdog_s and group.table.healthy(now):
            notify.watchdog()
            last_ping = now
        if now - last_status >= notify.status_every_s and group.all_ready.is_set():
            notify.status(f"serving: {group.table.status()}")
            last_status = now
        await trio.sleep(min(CHECK_EVERY_S, watchdog_s or CHECK_EVERY_S))


async def _stop(group: _Group, notify: SdNotify) -> None:
    group.stopping = True
    notify.stopping(f"stopping: draining {group.table.up()} workers")
    group.listener.close()  # no new connections once every worker closed its copy too
    group.signal_all(signal.SIGTERM)
    if not group.processes:
        return
    deadline = group.grace_s + STOP_MARGIN_S
    with trio.move_on_after(deadline):
        await group.exited.wait()
        return
    log.warning("workers still running %.1f s after SIGTERM; killing them", deadline)
    group.signal_all(signal.SIGKILL)
    with trio.move_on_after(STOP_MARGIN_S):
        await group.exited.wait()
