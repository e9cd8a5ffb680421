"""End to end: a real ``lasso serve`` (and ``lasso up``) subprocess, started as systemd
starts it (``$NOTIFY_SOCKET``, ``$WATCHDOG_USEC``), talking to a real datagram socket:
READY=1 once it listens, pings every WATCHDOG_USEC/2, STATUS= with the requests it served,
RELOADING=1 then READY=1 around a SIGHUP, no pings while the process is stopped
(SIGSTOP), STOPPING=1 on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANVIL = REPO / "node_modules" / ".bin" / "anvil"

#: WATCHDOG_USEC for the tests: a ping every 0.1 s.
WATCHDOG_USEC = 200_000

CONFIG = """\
[chains.devnet]
chain_id = 31337
providers = [{ id = "a", url = "http://127.0.0.1:9" }]
"""


class Receiver:
    """The notify socket, read with deadlines; every datagram is kept in ``seen``."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.address = str(path)
        self.seen: list[str] = []

    def until(self, wanted: str, *, timeout_s: float = 20.0) -> list[str]:
        """Datagrams up to and including the first that starts with ``wanted``."""
        got: list[str] = []
        deadline = time.monotonic() + timeout_s
        while not (got and got[-1].startswith(wanted)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {wanted!r} within {timeout_s} s; got {got}")
            self.sock.settimeout(remaining)
            got.append(self.sock.recv(4096).decode())
        self.seen += got
        return got

    def drain(self) -> list[str]:
        self.sock.setblocking(False)
        got = []
        try:
            while True:
                got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass
        self.seen += got
        return got

    def messages(self) -> list[str]:
        """Everything but the pings, each reduced to its first line's key."""
        return [m.split("\n")[0] for m in self.seen if m != "WATCHDOG=1"]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    notify = Receiver(tmp_path / "notify")
    with notify.sock:
        yield notify


def start(tmp_path: Path, receiver: Receiver, *args: str) -> subprocess.Popen[str]:
    config = tmp_path / "lasso.toml"
    config.write_text(CONFIG)
    env = dict(os.environ, NOTIFY_SOCKET=receiver.address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    return subprocess.Popen(
        [sys.executable, "-m", "lasso", *args, "--config", str(config), "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/rpc/devnet", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def listening_port(serve: subprocess.Popen[str]) -> int:
    assert serve.stdout is not None
    for line in serve.stdout:
        if " listening on " in line:
            return int(line.split(", ")[0].rsplit(":", 1)[1])
    raise AssertionError("lasso never said it listens")


@pytest.mark.slow
def test_lasso_serve_under_a_notify_socket(tmp_path: Path, receiver: Receiver) -> None:
    serve = start(tmp_path, receiver, "serve")
    try:
        before_ready = receiver.until("READY=1")
        port = listening_port(serve)  # READY=1 came once the front end listened
        assert before_ready[-1] == "READY=1\nSTATUS=serving: 1/1 provider channels up, 0.0 req/s"
        assert set(before_ready[:-1]) <= {"WATCHDOG=1"}
        assert receiver.until("WATCHDOG=1")[-1] == "WATCHDOG=1"  # pings run

        # The requests per second come from the calls that finished (errors count: the
        # provider is down, which the next status line shows too).
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
        assert {post(port, body) for _ in range(20)} <= {200, 502, 503}
        rates = []
        while not any(rates):  # a line sent while the requests ran may cover none of them
            status = receiver.until("STATUS=", timeout_s=15)[-1]
            rates.append(float(status.split(", ")[1].split(" ")[0]))
            assert len(rates) <= 2, rates

        serve.send_signal(signal.SIGHUP)
        reload = [m for m in receiver.until("READY=1") if m != "WATCHDOG=1"]
        assert [m.split("\n")[0] for m in reload][-2:] == ["RELOADING=1", "READY=1"]
        assert reload[-2].split("\n")[1].startswith("MONOTONIC_USEC=")
        assert reload[-1] == "READY=1\nSTATUS=reload unchanged: serving config generation 1"

        # A wedged process (stopped by SIGSTOP for ten ping periods) sends no pings; once
        # it runs again, the pings resume.
        receiver.drain()
        serve.send_signal(signal.SIGSTOP)
        try:
            time.sleep(0.1)  # a ping already on its way lands in here
            receiver.drain()
            time.sleep(10 * WATCHDOG_USEC / 2 / 1_000_000)
            assert receiver.drain() == []
        finally:
            serve.send_signal(signal.SIGCONT)
        assert receiver.until("WATCHDOG=1")[-1] == "WATCHDOG=1"

        serve.send_signal(signal.SIGTERM)
        assert receiver.until("STOPPING=1")[-1] == (
            "STOPPING=1\nSTATUS=stopping: draining in-flight requests"
        )
        assert serve.wait(timeout=20) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        assert serve.stdout is not None
        serve.stdout.close()
    messages = receiver.messages()
    assert messages[0] == "READY=1"
    assert messages[-1] == "STOPPING=1"
    assert "RELOADING=1" in messages
    assert messages.index("RELOADING=1") + 1 == messages.index("READY=1", 1)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not ANVIL.exists(), reason="anvil is not installed (make install)")
def test_lasso_up_is_ready_after_its_devnet_and_hides_the_socket_from_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    up = start(tmp_path, receiver, "up", "--nodes", "1", "--port-base", "0")
    try:
        assert set(receiver.until("READY=1")[:-1]) <= {"WATCHDOG=1"}
        port = listening_port(up)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        nodes = _children(up.pid)
        assert nodes, "lasso up runs its anvil nodes as children"
        for node in nodes:
            environ = (Path("/proc") / str(node) / "environ").read_bytes().split(b"\0")
            assert not [v for v in environ if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]
        up.send_signal(signal.SIGTERM)
        assert receiver.until("STOPPING=1")[-1].startswith("STOPPING=1")
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        assert up.stdout is not None
        up.stdout.close()
