"""A worker process: the whole gateway (``lasso.daemon.serve``) on its parent's socket.

Started by the parent (``lasso.workers.supervisor``) as ``python -c ...main()``
with the listening socket and one end of a control socketpair inherited
(``pass_fds``) and named in the environment (``ENV_*`` below). It loads the same
settings file as the parent and every sibling, runs its own providers, breakers and
subscriptions, and tells the parent over the control socket::

    ready\\n     the front end accepts on the shared socket (once)
    ping\\n      every PING_S from a task on its event loop (a wedged loop sends none)

SIGHUP reloads its settings file; SIGTERM (or SIGINT, SIGQUIT) drains and exits. An
end of file on the control socket means the parent is gone: the worker drains and
exits rather than serve on unsupervised.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from functools import partial

import trio

from lasso import logsetup, redact
from lasso.config import ConfigError, Settings, load_settings
from lasso.core.workers import PING_S
from lasso.daemon import (
    _reload_signals,
    _shutdown_on_signal,
    raise_open_file_limit,
    serve,
    tune_gc,
)
from lasso.reload import ReloadState
from lasso.workers.instance import Instance

log = logging.getLogger("lasso.workers")

ENV_CONFIG = "LASSO_WORKER_CONFIG"
ENV_LISTEN_FD = "LASSO_WORKER_LISTEN_FD"
ENV_CONTROL_FD = "LASSO_WORKER_CONTROL_FD"
ENV_INDEX = "LASSO_WORKER_INDEX"
ENV_COUNT = "LASSO_WORKER_COUNT"
ENV_DIR = "LASSO_WORKER_DIR"
ENV_LOG_LEVEL = "LASSO_WORKER_LOG_LEVEL"


async def run_worker(
    settings: Settings,
    listener: socket.socket,
    control: socket.socket,
    instance: Instance,
    config_path: str,
) -> None:
    raise_open_file_limit(settings.server.max_connections)
    ctl = trio.socket.from_stdlib_socket(control)
    state = ReloadState(settings, source=config_path)
    async with (
        _reload_signals() as reloads,
        _shutdown_on_signal() as shutdown,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(_watch_parent, ctl, shutdown)

        async def serve_then_stop(task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(
                settings,
                shutdown=shutdown,
                config_path=config_path,
                reloads=reloads,
                reload_state=state,
                listen_socket=listener,
                instance=instance,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel(reason="drained")

        await nursery.start(serve_then_stop)
        tune_gc()
        if await _tell(ctl, b"ready\n"):
            nursery.start_soon(_ping, ctl)


async def _tell(ctl: trio.socket.SocketType, line: bytes) -> bool:
    try:
        await ctl.send(line)
    except OSError:
        return False  # the parent is gone; _watch_parent stops us
    return True


async def _ping(ctl: trio.socket.SocketType) -> None:
    while True:  # a heartbeat: periodic by design, not a wait for a condition
        if not await _tell(ctl, b"ping\n"):
            return
        await trio.sleep(PING_S)


async def _watch_parent(ctl: trio.socket.SocketType, shutdown: trio.Event) -> None:
    """The parent never writes: an end of file (or an error) means it died."""
    try:
        while await ctl.recv(64):
            pass
    except OSError:
        pass
    if not shutdown.is_set():
        log.warning("worker %d: the parent process is gone; draining", os.getpid())
        shutdown.set()


def main() -> int:
    env = os.environ
    logsetup.setup(env.get(ENV_LOG_LEVEL) or None)
    redact.install()
    path = env[ENV_CONFIG]
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    redact.update(settings)
    logsetup.apply(settings.logging.format, settings.logging.level)
    listener = socket.socket(fileno=int(env[ENV_LISTEN_FD]))
    control = socket.socket(fileno=int(env[ENV_CONTROL_FD]))
    instance = Instance(int(env[ENV_INDEX]), int(env[ENV_COUNT]), env[ENV_DIR])
    trio.run(partial(run_worker, settings, listener, control, instance, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
