"""`lasso up` (what `make run` runs), as a real process: repeated signals never orphan nodes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.integration.test_devnet import is_alive

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SETTINGS = """
[chains.devnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 0  # the silent provider's one accepted connection is the client's request
providers = [ {{ id = "silent", url = "http://127.0.0.1:{port}" }} ]
"""


def free_port_run(count: int) -> int:
    """A base port with ``count`` free ports from it (checked; the kernel picks the base)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        ports = range(base, base + count)
        try:
            for port in ports:
                with socket.socket() as check:
                    check.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def anvil_pids(port_base: int) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"anvil") for a in args[:1]) and str(port_base).encode() in args:
            pids.append(int(cmdline.parent.name))
    return pids


async def read_until(stream: trio.abc.ReceiveStream, marker: bytes, seen: bytearray) -> None:
    while marker not in seen:
        chunk = await stream.receive_some(4096)
        assert chunk, bytes(seen)
        seen += chunk


async def test_a_second_signal_while_draining_still_stops_every_node(tmp_path: Path) -> None:
    base = free_port_run(3)
    silent = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]  # accepts, never answers
    config = tmp_path / "settings.toml"
    config.write_text(SETTINGS.format(port=silent.socket.getsockname()[1]))
    command = [
        sys.executable,
        "-m",
        "lasso.cli",
        "up",
        "--config",
        str(config),
        "--port",
        "0",
        "--nodes",
        "1",
        "--port-base",
        str(base),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with trio.fail_after(30):
        up = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO
        )
        assert up.stdout is not None and up.stderr is not None
        out, err = bytearray(), bytearray()
        await read_until(up.stdout, b"listening on", out)
        gateway = out.split(b"listening on ")[1].split()[0].decode()
        nodes = anvil_pids(base)
        assert nodes and all(is_alive(pid) for pid in nodes)
        async with trio.open_nursery() as nursery:
            # A request hangs on the silent provider, so the drain takes a while.
            nursery.start_soon(
                trio.run_process,
                [
                    "curl",
                    "-s",
                    "-m",
                    "5",
                    f"{gateway}/rpc/devnet",
                    "-d",
                    '{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x0000000000000000000000000000000000000001","latest"]}',
                ],
            )
            upstream = await silent.accept()  # the request is in flight
            up.send_signal(signal.SIGTERM)
            await read_until(up.stderr, b"draining in-flight requests", err)
            up.send_signal(signal.SIGTERM)  # as make forwards the one timeout sent it
            code = await up.wait()
            await upstream.aclose()
        await silent.aclose()
        await up.stdout.aclose()
        await up.stderr.aclose()
    assert code == 0, bytes(err)
    assert [pid for pid in nodes if is_alive(pid)] == []
