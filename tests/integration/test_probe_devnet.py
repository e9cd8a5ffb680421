"""``lasso probe`` as a real process against the lockstep devnet: a pruned node
(anvil ``--prune-history``), a node behind a fault proxy enforcing geth's eth_getLogs
range limit with geth's own refusal, a dead provider and one that never answers."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio

from lasso.chaos import logs_limit, open_fault_proxy
from lasso.config import ProviderConfig, settings_from_dict
from lasso.devnet import DEV_ACCOUNTS, Devnet, open_devnet
from lasso.probe.client import DirectClient
from tests.integration.test_lasso_up import free_port_run, read_until
from tests.probe.test_probe_cli import closed_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HEAD = 80
KEEP = 16


def settings_text(devnet: Devnet, proxy_url: str, silent_port: int) -> str:
    nodes = devnet.nodes
    entries = [
        ("devnet-1", nodes[0].http_url, nodes[0].ws_url),
        ("devnet-2", proxy_url, nodes[1].ws_url),
        ("devnet-3", nodes[2].http_url, nodes[2].ws_url),
    ]
    text = "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\n"
    for index, (pid, url, ws_url) in enumerate(entries):
        text += f'[[chains.devnet.providers]]\nid = "{pid}"\nurl = "{url}"\n'
        text += f'ws_url = "{ws_url}"\npriority = {index + 1}\n'
    text += f'[[chains.devnet.providers]]\nid = "dead"\nurl = "http://127.0.0.1:{closed_port()}"\n'
    text += f'[[chains.devnet.providers]]\nid = "silent"\nurl = "http://127.0.0.1:{silent_port}"\n'
    return text


async def lasso(*args: str) -> trio.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "lasso", "probe", *args]
    return await trio.run_process(
        command, cwd=REPO, check=False, capture_stdout=True, capture_stderr=True
    )


def row(table: str, provider: str) -> list[str]:
    """A summary row's cells (split on runs of 2+ spaces)."""
    line = next(line for line in table.splitlines() if line.startswith(provider + " "))
    return re.split(r"\s{2,}", line.strip())


def merged(config: Path, snippet: str) -> dict[str, Any]:
    tree = tomllib.loads(config.read_text())
    providers = tree["chains"]["devnet"]["providers"]
    for table in tomllib.loads(snippet)["chains"]["devnet"]["providers"]:
        next(p for p in providers if p["id"] == table["id"]).update(table)
    return tree


async def test_probe_measures_a_pruned_node_a_range_limit_and_survives_dead_providers(
    tmp_path: Path,
) -> None:
    silent = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]  # accepts, never answers
    async with (
        silent,
        open_devnet(nodes=3, block_time_s=None, prune_history={2: KEEP}) as devnet,
        open_fault_proxy(devnet.nodes[1].http_url) as proxy,
    ):
        for _ in range(HEAD - 1):
            await devnet.mine()
        raw = await devnet.sign_transfer(to=DEV_ACCOUNTS[1], value_wei=1)
        await devnet.send_raw_transaction(raw)  # in the head block: the probe's params use it
        await devnet.mine()
        proxy.logs_limit = logs_limit("geth", 50)  # -32000 "exceed maximum block range: 50"
        config = tmp_path / "settings.toml"
        config.write_text(settings_text(devnet, proxy.url, silent.socket.getsockname()[1]))

        started = trio.current_time()
        probed = await lasso("devnet", "--config", str(config), "--timeout", "1")
        elapsed = trio.current_time() - started
        table = probed.stdout.decode()
        print(table)
        print(f"lasso probe as a process: {elapsed:.2f} s")
        assert probed.returncode == 0, probed.stderr.decode()

        header = ["provider", "head", "archival", "logs range", "batch", "subscribe", "methods"]
        assert row(table, "provider")[:7] == header
        assert row(table, "devnet-1")[:7] == ["devnet-1", "80", "full", "none <= 81", "yes", "yes", "38/40"]  # fmt: skip
        assert row(table, "devnet-2")[:7] == ["devnet-2", "80", "full", "50 (stated)", "yes", "yes", "38/40"]  # fmt: skip
        assert row(table, "devnet-3")[:7] == ["devnet-3", "80", "from 64 (keeps 16)", "none <= 81", "yes", "yes", "38/40"]  # fmt: skip
        assert row(table, "dead")[:3] == ["dead", "-", "no answer"]
        assert row(table, "silent")[:3] == ["silent", "-", "no answer"]
        assert "  no answer: UpstreamTimeout: no answer to eth_chainId within 1 s" in table
        assert "  unsupported: net_peerCount, trace_call" in table
        assert proxy.statistics().injected["logs_range_refused"] >= 1
        assert elapsed < 15  # the silent provider costs one 1 s call, not a hang

        written = await lasso("devnet", "--config", str(config), "--write", "--timeout", "1")
        assert written.returncode == 0
        snippet = written.stdout.decode()
        assert "# earliest state block 64 (head 80: keeps 16 blocks of state)" in snippet
        settings = settings_from_dict(merged(config, snippet), env={}, source="merged")
        providers = {p.id: p for p in settings.default_profile.chains["devnet"].providers}
        assert [providers[f"devnet-{i}"].archival for i in (1, 2, 3)] == [True, True, False]
        assert providers["devnet-2"].max_logs_block_range == 50
        assert providers["devnet-1"].max_logs_block_range is None
        assert all(providers[f"devnet-{i}"].supports_batch for i in (1, 2, 3))
        assert all(providers[f"devnet-{i}"].subscriptions for i in (1, 2, 3))
        assert providers["devnet-3"].unsupported_methods == ("net_peerCount", "trace_call")
        assert providers["silent"].url.startswith("http://127.0.0.1:")  # untouched


async def test_lasso_up_with_a_pruned_node_then_lasso_probe_shows_it(tmp_path: Path) -> None:
    """What ``make run PRUNE_HISTORY=N`` then ``make probe`` do, on free ports."""
    base = free_port_run(2)
    config = tmp_path / "settings.toml"
    config.write_text(
        "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 200\n"
        + "".join(
            f'[[chains.devnet.providers]]\nid = "devnet-{i + 1}"\n'
            f'url = "http://127.0.0.1:{base + i}"\nws_url = "ws://127.0.0.1:{base + i}"\n'
            for i in range(2)
        )
    )
    command = [sys.executable, "-m", "lasso", "up", "--config", str(config), "--port", "0"]
    command += ["--nodes", "2", "--block-time", "0.2", "--port-base", str(base)]
    command += ["--prune-history", "2"]
    with trio.fail_after(60):
        up = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
        )
        try:
            assert up.stdout is not None
            out = bytearray()
            await read_until(up.stdout, b"listening on", out)
            assert (
                f"node 1  http://127.0.0.1:{base + 1}  ws://127.0.0.1:{base + 1}  "
                "(pruned: keeps the state of its last 2 blocks)"
            ).encode() in out
            await wait_for_head(f"http://127.0.0.1:{base + 1}", 6)
            probed = await lasso("devnet", "--config", str(config))
        finally:
            up.send_signal(signal.SIGTERM)
            await up.wait()
    table = probed.stdout.decode()
    print(table)
    assert probed.returncode == 0
    assert row(table, "devnet-1")[2] == "full"
    assert re.fullmatch(r"from \d+ \(keeps [1-3]\)", row(table, "devnet-2")[2])


async def wait_for_head(url: str, height: int) -> None:
    client = DirectClient(ProviderConfig(id="node", url=url), call_timeout_s=1.0)
    try:
        for _ in range(400):  # bounded by the caller's fail_after, too
            if int(await client.call_json("eth_blockNumber", []), 16) >= height:
                return
            await trio.sleep(0.05)  # the node mines on its own timer: nothing to wait on
    finally:
        await client.aclose()
