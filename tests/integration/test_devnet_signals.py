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


@pytest.mark.parametrize("signum", STOPS, ids=lambda s: s.name)
async def test_lasso_up_stops_its_nodes_on(signum: signal.Signals, tmp_path: Path) -> None:
    assert await run_then_signal("up", signum, tmp_path) == 0
