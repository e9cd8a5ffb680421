"""`lasso devnet` and `lasso up` as real processes: whatever signal ends them, no anvil
node of theirs is left running (the nodes run in their own sessions, so a terminal's
SIGHUP or Ctrl-C reaches only lasso, which must stop them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.integration.test_devnet import is_alive
from tests.integration.test_lasso_up import REPO, free_port_run, read_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODES = 2
STOPS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]
#: ``lasso up`` reloads its gateway on SIGHUP (tests/integration/test_reload_signal.py).
UP_STOPS = [signal.SIGINT, signal.SIGTERM, signal.SIGQUIT]
SETTINGS = """
[chains.devnet]
chain_id = 31337
providers = [ {{ id = "n0", url = "http://127.0.0.1:{port}" }} ]
"""


def anvil_pids(ports: range) -> list[int]:
    """Live anvil processes listening on any of ``ports`` (by their command line)."""
    wanted = {str(port).encode() for port in ports}
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args[0].endswith(b"anvil") and wanted & set(args):
            pid = int(cmdline.parent.name)
            if is_alive(pid):
                pids.append(pid)
    return pids


def command(which: str, base: int, config: Path) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "lasso.cli",
        which,
        "--nodes",
        str(NODES),
        "--port-base",
        str(base),
    ]
    if which == "up":
        args += ["--config", str(config), "--port", "0"]
    return args


async def run_then_signal(which: str, signum: signal.Signals, tmp_path: Path) -> int | None:
    """Start ``lasso <which>``, wait until its nodes run, send ``signum``; the exit code."""
    base = free_port_run(NODES)
    ports = range(base, base + NODES)
    config = tmp_path / "settings.toml"
    config.write_text(SETTINGS.format(port=base))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ready = b"listening on" if which == "up" else b"stops every node"
    process = await trio.lowlevel.open_process(
        command(which, base, config), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert process.stdout is not None
    try:
        with trio.fail_after(30):
            await read_until(process.stdout, ready, bytearray())
            nodes = anvil_pids(ports)
            assert len(nodes) == NODES
            process.send_signal(signum)
            code = await process.wait()
            # Whatever became of lasso, its nodes are gone (reaped by it, so no waiting).
            assert anvil_pids(ports) == []
            assert [pid for pid in nodes if is_alive(pid)] == []
            return code
    finally:
        process.kill()
        await process.wait()
        await process.stdout.aclose()
        for pid in anvil_pids(ports):  # a failed test must not leak nodes either
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", STOPS, ids=lambda s: s.name)
async def test_lasso_devnet_stops_its_nodes_on(signum: signal.Signals, tmp_path: Path) -> None:
    assert await run_then_signal("devnet", signum, tmp_path) == 0


@pytest.mark.parametrize("signum", UP_STOPS, ids=lambda s: s.name)
async def test_lasso_up_stops_its_nodes_on(signum: signal.Signals, tmp_path: Path) -> None:
    assert await run_then_signal("up", signum, tmp_path) == 0


# The owner retires trio's worker threads (those that started the nodes) before it is
# killed: a parent-death signal tied to the starting thread would have killed the nodes
# already, as the reverted PR_SET_PDEATHSIG did about 30 s into `make run`.
OWNER = """
import threading, trio, trio._core._thread_cache as cache
from lasso.devnet import open_devnet
cache.IDLE_TIMEOUT = 0.01
async def main():
    async with open_devnet(nodes=2, block_time_s=None) as devnet:
        with trio.fail_after(10):
            while threading.active_count() > 1:
                await trio.sleep(0.01)
        await devnet.mine()
        assert devnet.statistics().heads == (1, 1)
        print(" ".join(map(str, devnet.statistics().pids)), flush=True)
        await trio.sleep_forever()
trio.run(main)
"""


async def wait_exited(pid: int) -> None:
    """Return once ``pid`` (not our child) has exited: its pidfd turns readable."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open (Linux)")
async def test_the_nodes_outlive_their_starting_threads_but_not_a_killed_owner() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    owner = await trio.lowlevel.open_process(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, cwd=REPO, env=env
    )
    assert owner.stdout is not None
    pids: list[int] = []
    try:
        with trio.fail_after(30):
            line = bytearray()
            await read_until(owner.stdout, b"\n", line)
            pids = [int(p) for p in line.split()]
            assert len(pids) == 2 and all(is_alive(pid) for pid in pids)
            owner.kill()  # SIGKILL: no cleanup code runs in the owner
            await owner.wait()
            for pid in pids:
                await wait_exited(pid)
    finally:
        owner.kill()
        await owner.wait()
        await owner.stdout.aclose()
        for pid in pids:
            if is_alive(pid):
                os.killpg(pid, signal.SIGKILL)
    assert [pid for pid in pids if is_alive(pid)] == []


async def test_lasso_devnet_rides_out_a_hung_then_a_killed_node() -> None:
    """The CLI neither exits nor says "could not start": it logs each node's recovery."""
    base = free_port_run(NODES)
    ports = range(base, base + NODES)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*command("devnet", base, REPO), "--block-time", "0.1"]
    process = await trio.lowlevel.open_process(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    err = bytearray()
    try:
        with trio.fail_after(60):
            await read_until(process.stdout, b"stops every node", bytearray())
            first = anvil_pids(range(base, base + 1))[0]
            os.killpg(first, signal.SIGSTOP)
            await read_until(process.stderr, b"node 0: up -> hung", err)
            os.killpg(first, signal.SIGCONT)
            await read_until(process.stderr, b"node 0: catching-up -> up", err)
            second = anvil_pids(range(base + 1, base + 2))[0]
            os.killpg(second, signal.SIGKILL)
            await read_until(process.stderr, b"node 1: dead -> catching-up", err)
            await read_until(process.stderr, b"node 1: catching-up -> up", err)
            assert process.returncode is None
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
    finally:
        process.kill()
        await process.wait()
        await process.stdout.aclose()
        await process.stderr.aclose()
        for pid in anvil_pids(ports):
            os.killpg(pid, signal.SIGKILL)
    assert b"could not start" not in err
    assert anvil_pids(ports) == []
