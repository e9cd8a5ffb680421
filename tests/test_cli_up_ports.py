"""``lasso up --port-base N`` with the shipped config: the devnet chain follows the nodes.

Before: the shipped ``settings.toml`` names the devnet at 127.0.0.1:8545..8547, so
``lasso up --port-base 0`` (or any base but 8545) started the nodes elsewhere and
every call to the devnet chain's providers failed (connection refused), silently
at start. A provider naming a node that will not run (``--nodes 2``) is now one
line and exit 2.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "settings.toml"
CALL = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LASSO_LOG_LEVEL", None)
    return env


async def _read_until(stream: trio.abc.ReceiveStream, pattern: bytes) -> bytes:
    seen = b""
    while not re.search(pattern, seen):
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError(seen.decode(errors="replace"))
        seen += chunk
    return seen


async def _wait_for_log(path: Path, text: bytes) -> None:
    while True:
        if text in await trio.Path(path).read_bytes():
            return
        await trio.sleep(0.05)  # polling the daemon's log file (the caller bounds it)


async def _pinned_calls(base: str) -> dict[str, object]:
    answers: dict[str, object] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for provider in ("devnet-1", "devnet-2", "devnet-3"):
            reply = await client.post(f"{base}/rpc/provider/{provider}/devnet", json=CALL)
            answers[provider] = reply.json().get("result", reply.json().get("error"))
    return answers


@pytest.mark.slow
@pytest.mark.integration
async def test_up_on_free_ports_with_the_shipped_config_reaches_every_devnet_node(
    tmp_path: Path,
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(SHIPPED.read_text())
    argv = [sys.executable, "-m", "lasso", "up", "--config", str(config)]
    argv += ["--port-base", "0", "--port", "0", "--block-time", "0.2", "--log-level", "info"]
    with (tmp_path / "stderr.log").open("wb") as errors:
        process = await trio.lowlevel.open_process(
            argv, stdout=subprocess.PIPE, stderr=errors, env=_env(), cwd=tmp_path
        )
    assert process.stdout is not None
    try:
        with trio.fail_after(60):
            out = await _read_until(process.stdout, rb"listening on (http://\S+)")
            base = re.search(rb"listening on (http://\S+)", out).group(1).decode()  # type: ignore[union-attr]
            assert b"http://127.0.0.1:8545" not in out
            answers = await _pinned_calls(base)
            assert all(isinstance(v, str) and v.startswith("0x") for v in answers.values()), answers
            # A reload re-reads the file (8545...) and must keep following the nodes.
            process.send_signal(signal.SIGHUP)
            await _wait_for_log(tmp_path / "stderr.log", b"nothing to apply")
            answers = await _pinned_calls(base)
            assert all(isinstance(v, str) and v.startswith("0x") for v in answers.values()), answers
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            await process.wait()
    assert process.returncode == 0, (tmp_path / "stderr.log").read_text()[-2000:]


@pytest.mark.slow
def test_up_with_fewer_nodes_than_the_config_names_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lasso", "up", "--config", str(SHIPPED), "--nodes", "2"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # nothing started
    assert done.stderr.strip() == (
        f"lasso: {SHIPPED}: chain 'devnet' provider 'devnet-3' is devnet node 2 "
        "(http://127.0.0.1:8547), but the devnet runs 2 nodes: "
        "use --nodes 3 or remove the provider"
    )
