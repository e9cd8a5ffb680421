"""A real SIGHUP to a real ``lasso serve`` / ``lasso up`` process reloads its config file:
it keeps serving, ``/health``'s config generation goes up, and a broken file is refused
with the last-known-good kept; ``lasso up``'s devnet nodes keep running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.integration.test_devnet import is_alive
from tests.integration.test_devnet_signals import anvil_pids
from tests.integration.test_lasso_up import REPO, free_port_run, read_until

pytestmark = [pytest.mark.slow]

SETTINGS = """
[server]
max_batch = {batch}

[chains.devnet]
chain_id = 31337
providers = [ {{ id = "n0", url = "http://127.0.0.1:{port}" }} ]
"""


async def get_json(url: str) -> Any:
    done = await trio.run_process(["curl", "-s", "-m", "5", url], capture_stdout=True)
    return json.loads(done.stdout)


async def wait_generation(base: str, generation: int) -> dict[str, Any]:
    """/health's config once it reaches ``generation`` (polled, bounded by the caller)."""
    while True:
        config: dict[str, Any] = (await get_json(f"{base}/health"))["config"]
        if config["generation"] >= generation and config["last_reload"] is not None:
            return config
        await trio.sleep(0.05)


async def wait_outcome(base: str, outcome: str) -> dict[str, Any]:
    while True:
        config: dict[str, Any] = (await get_json(f"{base}/health"))["config"]
        if config["last_reload"] is not None and config["last_reload"]["outcome"] == outcome:
            return config
        await trio.sleep(0.05)


async def start(args: list[str], tmp_path: Path) -> tuple[trio.Process, str, bytearray]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "lasso", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    assert process.stdout is not None
    out = bytearray()
    await read_until(process.stdout, b"health", out)
    base = out.split(b"listening on ")[1].split()[0].decode().rstrip(",")
    return process, base, out


async def stop(process: trio.Process) -> int:
    process.send_signal(signal.SIGTERM)
    code = await process.wait()
    assert process.stdout is not None
    await process.stdout.aclose()
    return code


async def test_sighup_reloads_lasso_serve_and_it_keeps_serving(tmp_path: Path) -> None:
    config = tmp_path / "lasso.toml"
    config.write_text(SETTINGS.format(batch=5, port=1))
    pid_file = tmp_path / "lasso.pid"
    args = ["serve", "--config", str(config), "--port", "0", "--pid-file", str(pid_file)]
    with trio.fail_after(30):
        process, base, out = await start(args, tmp_path)
        try:
            assert b"SIGHUP" in out  # the banner says what SIGHUP does
            assert (await get_json(f"{base}/health"))["config"]["generation"] == 1
            config.write_text(SETTINGS.format(batch=7, port=1))
            os.kill(int(pid_file.read_text()), signal.SIGHUP)
            health = await wait_generation(base, 2)
            assert health["last_reload"]["outcome"] == "applied"
            config.write_text("[server]\nmax_batch = -1\n")  # broken: refused, LKG kept
            os.kill(int(pid_file.read_text()), signal.SIGHUP)
            health = await wait_outcome(base, "rejected")
            assert health["generation"] == 2
            assert health["last_reload"]["problems"]
            assert process.returncode is None  # SIGHUP no longer stops it
            assert "chains" in await get_json(f"{base}/health")
        finally:
            code = await stop(process)
    assert code == 0


@pytest.mark.integration
async def test_sighup_reloads_lasso_up_and_keeps_its_devnet(tmp_path: Path) -> None:
    base_port = free_port_run(1)
    config = tmp_path / "lasso.toml"
    config.write_text(SETTINGS.format(batch=5, port=base_port))
    args = ["up", "--config", str(config), "--port", "0", "--nodes", "1"]
    args += ["--port-base", str(base_port)]
    with trio.fail_after(30):
        process, base, _ = await start(args, tmp_path)
        try:
            nodes = anvil_pids(range(base_port, base_port + 1))
            assert len(nodes) == 1
            config.write_text(SETTINGS.format(batch=7, port=base_port))
            process.send_signal(signal.SIGHUP)
            await wait_generation(base, 2)
            assert all(is_alive(pid) for pid in nodes)  # the devnet keeps running
        finally:
            code = await stop(process)
    assert code == 0
    assert [pid for pid in nodes if is_alive(pid)] == []
