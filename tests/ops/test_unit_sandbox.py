"""``lasso serve`` inside deploy/lasso.service's sandbox, as far as it can be had without
systemd as PID 1: the unit's own system call allow list, socket families and W^X memory
(tests/ops/sandbox_jail.py), every capability dropped, no new privileges, a soft open-file
limit below the hard one. It must start, resolve and reach a real provider over HTTP and
WebSocket, serve a call, raise its open-file limit, notify systemd over AF_UNIX, reload and
drain, with nothing refused on the way."""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from lasso.devnet import open_devnet
from tests.ops.test_sdnotify_daemon import Receiver, listening_port
from tests.ops.test_unit import UNIT, allowed_syscalls, directives

REPO = Path(__file__).resolve().parents[2]
JAIL = Path(__file__).with_name("sandbox_jail.py")
ANVIL = REPO / "node_modules" / ".bin" / "anvil"


def _missing() -> str | None:
    for tool in ("systemd-analyze", "setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/proc/self/status").exists():
        return "no /proc"
    try:
        import ctypes

        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return "libseccomp is not installed (Debian: libseccomp2)"
    if not ANVIL.exists():
        return "anvil is not installed (make install)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def _jailed(argv: list[str]) -> tuple[list[str], str]:
    """The command line and $JAIL_SPEC that run ``argv`` under the unit's restrictions."""
    service = directives(UNIT.read_text())["Service"]
    (families,) = service["RestrictAddressFamilies"]
    spec = {
        "allow": sorted(allowed_syscalls(service)),
        "families": families.split(),
        "mdwe": service["MemoryDenyWriteExecute"] == ["true"],
        "argv": argv,
    }
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wrapper = [
        "prlimit",
        f"--nofile={min(1024, hard)}:{hard}",  # lasso raises its soft limit itself
        "setpriv",
        "--bounding-set=-all",  # CapabilityBoundingSet= (empty)
        "--inh-caps=-all",
        "--no-new-privs",  # NoNewPrivileges=true
        sys.executable,
        str(JAIL),
    ]
    return wrapper, json.dumps(spec)


def _field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def _run_jailed(tmp_path: Path, http_url: str, ws_url: str) -> None:
    config = tmp_path / "lasso.toml"
    # "localhost", not 127.0.0.1: the name goes through getaddrinfo, without netlink.
    config.write_text(
        '[chains.devnet]\nchain_id = 31337\nproviders = [{ id = "n0", '
        f'url = "{http_url.replace("127.0.0.1", "localhost")}", '
        f'ws_url = "{ws_url.replace("127.0.0.1", "localhost")}" }}]\n'
    )
    receiver = Receiver(tmp_path / "notify")
    wrapper, spec = _jailed(
        [sys.executable, "-m", "lasso", "serve", "--config", str(config), "--port", "0"]
    )
    env = dict(os.environ, JAIL_SPEC=spec, NOTIFY_SOCKET=receiver.address, WATCHDOG_USEC="2000000")
    stderr = tmp_path / "stderr"
    with receiver.sock, stderr.open("w") as errors:
        serve = subprocess.Popen(
            wrapper, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        try:
            receiver.until("READY=1", timeout_s=60)
            port = listening_port(serve)
            # The jail is on the daemon itself.
            assert _field(serve.pid, "Seccomp") == "2"  # filtering
            assert _field(serve.pid, "NoNewPrivs") == "1"
            assert int(_field(serve.pid, "CapEff"), 16) == 0
            limits = Path(f"/proc/{serve.pid}/limits").read_text()
            (files,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
            soft, hard = files.split()[3:5]
            assert soft == hard, files  # setrlimit went through the filter

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
            conn.request("POST", "/rpc/devnet", body, {"Content-Type": "application/json"})
            answer = conn.getresponse().read()
            conn.close()
            assert json.loads(answer) == {"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}

            # Both channels up: the WebSocket to the provider connected too.
            deadline = time.monotonic() + 30
            while "2/2 provider channels up" not in receiver.until("STATUS=")[-1]:
                assert time.monotonic() < deadline, receiver.seen[-3:]

            serve.send_signal(signal.SIGHUP)
            assert receiver.until("READY=1")[-1].startswith("READY=1\nSTATUS=reload unchanged")
            serve.send_signal(signal.SIGTERM)
            assert receiver.until("STOPPING=1")[-1].startswith("STOPPING=1")
            assert serve.wait(timeout=30) == 0
        finally:
            if serve.poll() is None:
                serve.kill()
                serve.wait()
            assert serve.stdout is not None
            serve.stdout.close()
    log = stderr.read_text()
    for trouble in ("Traceback", "could not raise", "cannot notify", "ERROR", "Operation not"):
        assert trouble not in log, log


async def test_lasso_serves_inside_the_units_sandbox(tmp_path: Path) -> None:
    async with open_devnet(nodes=1, block_time_s=None, port_base=0) as devnet:
        (node,) = devnet.nodes
        await trio.to_thread.run_sync(_run_jailed, tmp_path, node.http_url, node.ws_url)
