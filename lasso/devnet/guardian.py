"""The guardian: a watcher process that stops the nodes if the devnet's owner dies.

Each anvil node runs in its own process group and session, so no signal sent
to the owner (a terminal's SIGHUP, a Ctrl-C) reaches it, and an owner killed
outright (SIGKILL, the OOM killer) cannot stop it. The guardian covers that
last case. It is a tiny Python process, in its own session too, whose stdin
is a pipe from the owner. The owner writes ``+<pgid>`` when a node starts and
``-<pgid>`` once it has reaped it. The guardian reads until end of file: when
the owner closes the pipe, or dies however it dies (the kernel closes its
end), it SIGTERMs every node group still registered, waits a bounded time,
SIGKILLs them and exits.

The kernel's parent-death signal (``PR_SET_PDEATHSIG``) looks simpler but
fires when the *thread* that started the child exits, and trio starts
processes from worker threads it retires when idle: it killed the nodes of a
healthy devnet about 30 s in (commit "Revert the devnet's parent-death
signal"). A pipe belongs to the process, not a thread.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

log = logging.getLogger("lasso.devnet")

REAP_DEADLINE_S = 2.0

# Runs with -I -S: no site, no user paths, nothing imported but the stdlib.
_GUARD = """
import os, signal, sys, time
groups = set()
for line in sys.stdin.buffer:
    try:
        pgid = int(line[1:])
    except ValueError:
        continue
    if line[:1] == b"+":
        groups.add(pgid)
    else:
        groups.discard(pgid)
def send(signum):
    for pgid in list(groups):
        try:
            os.killpg(pgid, signum)
        except OSError:
            groups.discard(pgid)
send(signal.SIGTERM)
send(signal.SIGCONT)
deadline = time.monotonic() + 3.0
while groups and time.monotonic() < deadline:
    time.sleep(0.05)
    send(0)
send(signal.SIGKILL)
"""


class Guardian:
    """The owner's end of the pipe: register node groups, unregister reaped ones."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        try:
            os.write(self._fd, line.encode())
        except OSError as exc:  # a guardian gone or stuck must not stop the devnet
            log.warning("devnet guardian unreachable: %s", exc)


@asynccontextmanager
async def open_guardian() -> AsyncIterator[Guardian]:
    """Start a guardian for this block; on the way out, close the pipe and reap it."""
    read_end, write_end = os.pipe()  # neither end is inherited by other children
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-I", "-S", "-c", _GUARD],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    os.set_blocking(write_end, False)
    try:
        yield Guardian(write_end)
    finally:
        os.close(write_end)
        with trio.CancelScope(shield=True):
            with trio.move_on_after(REAP_DEADLINE_S):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
