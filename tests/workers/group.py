"""A real ``lasso serve --workers N`` process group for the tests, with the bench's
instant upstream (``bench.instant_upstream``) as its one provider."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
[chains.devnet]
chain_id = 31337
providers = [{{ id = "up", url = "http://127.0.0.1:{port}" }}]
"""
BLOCK_NUMBER = b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":[]}'
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], *, timeout_s: float = 20.0, what: str = "") -> T:
    """Poll ``probe`` until it returns something (not None), bounded by ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


@contextmanager
def instant_upstream() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.instant_upstream", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        word, port = proc.stdout.readline().split()
        assert word == "ready"
        yield int(port)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class Group:
    def __init__(self, proc: subprocess.Popen[str], port: int, config: Path) -> None:
        self.proc = proc
        self.port = port
        self.config = config

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        status, body = self.get("/health")
        assert status == 200
        report: dict[str, Any] = json.loads(body)
        return report

    def post(self, body: bytes = BLOCK_NUMBER) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", "/rpc/devnet", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def members(self) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = self.health()["workers"]["members"]
        return members

    def worker_pids(self) -> list[int]:
        return [m["pid"] for m in self.members()]

    def all_up(self, count: int) -> list[int] | None:
        """The worker pids once ``count`` workers are up (else None)."""
        try:
            workers = self.health()["workers"]
        except OSError:
            return None
        return [m["pid"] for m in workers["members"]] if workers["up"] == count else None


def start_group(
    tmp_path: Path, upstream_port: int, *args: str, env: dict[str, str] | None = None
) -> Group:
    config = tmp_path / "lasso.toml"
    config.write_text(CONFIG.format(port=upstream_port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lasso", "serve", "--config", str(config), "--port", "0", *args],
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # a test's signals reach this group only
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if " listening on " in line:
            return Group(proc, int(line.split(", ")[0].rsplit(":", 1)[1]), config)
    proc.kill()
    proc.stdout.close()
    raise AssertionError(f"lasso never said it listens (rc {proc.wait()})")


def stop_group(group: Group) -> int:
    if group.proc.poll() is None:
        group.proc.send_signal(signal.SIGTERM)
    try:
        return group.proc.wait(timeout=30)
    finally:
        if group.proc.poll() is None:
            os.killpg(group.proc.pid, signal.SIGKILL)
        if group.proc.stdout is not None:
            group.proc.stdout.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def free_notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return sock
