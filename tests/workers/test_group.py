"""``lasso serve --workers 2`` end to end: real processes sharing a port the parent bound
(port 0, reported), the bench's instant upstream as the provider, systemd's notify
socket a real datagram socket."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers.group import (
    BLOCK_NUMBER,
    REPO,
    Group,
    children,
    free_notify_socket,
    gone,
    instant_upstream,
    start_group,
    stop_group,
    wait_for,
)

pytestmark = pytest.mark.slow


class Running:
    def __init__(self, group: Group, notify: socket.socket) -> None:
        self.group = group
        self.notify = notify


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("workers")
    notify = free_notify_socket(tmp / "notify")
    env = {"NOTIFY_SOCKET": str(tmp / "notify"), "WATCHDOG_USEC": "400000"}
    with notify, instant_upstream() as upstream:
        group = start_group(tmp, upstream, "--workers", "2", env=env)
        try:
            yield Running(group, notify)
        finally:
            assert stop_group(group) == 0


def datagrams_until(sock: socket.socket, prefix: str, timeout_s: float = 20.0) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not (got and got[-1].startswith(prefix)):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        got.append(sock.recv(4096).decode())
    return got


def test_ready_once_every_worker_listens_and_the_watchdog_runs(running: Running) -> None:
    got = datagrams_until(running.notify, "READY=1")
    assert got[-1] == "READY=1\nSTATUS=serving: 2/2 workers up"
    assert set(got[:-1]) <= {"WATCHDOG=1"}
    assert datagrams_until(running.notify, "WATCHDOG=1")[-1] == "WATCHDOG=1"
    workers = running.group.health()["workers"]
    assert (workers["count"], workers["up"]) == (2, 2)
    # The workers never saw $NOTIFY_SOCKET (only the parent speaks to systemd).
    for pid in running.group.worker_pids():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]


def test_two_workers_both_serve_requests(running: Running) -> None:
    group = running.group
    pids = set(group.worker_pids())
    assert len(pids) == 2 and group.proc.pid not in pids
    assert set(children(group.proc.pid)) == pids
    answered: set[int] = set()
    for _ in range(400):  # a fresh connection each: the kernel hands it to either worker
        answered.add(group.health()["workers"]["answered_by"]["pid"])
        if answered == pids:
            break
    assert answered == pids
    assert group.post() == (200, b'{"jsonrpc":"2.0","id":7,"result":"0x121eac0"}')


def test_metrics_have_every_workers_series(running: Running) -> None:
    for _ in range(3):
        assert running.group.post()[0] == 200
    status, body = running.group.get("/metrics")
    assert status == 200
    text = body.decode()
    for worker in ("0", "1"):
        assert f'lasso_config_generation{{worker="{worker}"}} 1.0' in text
        assert f'worker="{worker}"' in text.split("# HELP process_cpu_seconds_total")[1]
    assert text.count("# HELP lasso_config_generation ") == 1  # one family, merged
    calls = [line for line in text.splitlines() if line.startswith("lasso_requests_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in calls) >= 3


def test_sighup_reloads_every_worker(running: Running) -> None:
    group = running.group
    assert {m["config_generation"] for m in group.members()} == {1}
    group.config.write_text(group.config.read_text() + "\n[server]\nmax_connections_per_ip = 500\n")
    os.kill(group.proc.pid, signal.SIGHUP)

    def reloaded() -> bool | None:
        return {m["config_generation"] for m in group.members()} == {2} or None

    wait_for(reloaded, what="every worker at config generation 2")
    assert group.proc.poll() is None


class Load:
    """Clients on keep-alive connections, posting until stopped (at most ``limit`` each)."""

    def __init__(self, port: int, clients: int, limit: int = 20_000) -> None:
        self.port = port
        self.limit = limit
        self.stop = threading.Event()
        self.errors = [0] * clients
        self.done = [0] * clients
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        for _ in range(self.limit):
            if self.stop.is_set():
                break
            try:
                conn.request("POST", "/rpc/devnet", BLOCK_NUMBER, headers)
                response = conn.getresponse()
                ok = response.status == 200 and b'"result"' in response.read()
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()  # the next request opens a fresh connection
            if ok:
                self.done[i] += 1
            else:
                self.errors[i] += 1
        conn.close()


def test_a_killed_worker_is_restarted_and_only_its_connections_fail(running: Running) -> None:
    group = running.group
    before = group.worker_pids()
    victim = before[0]
    with Load(group.port, clients=4) as load:
        wait_for(lambda: sum(load.done) >= 200 or None, what="load running")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        def replaced() -> list[int] | None:
            pids = group.all_up(2)
            return pids if pids is not None and victim not in pids else None

        after = wait_for(replaced, what="the killed worker restarted")
        restart_s = time.monotonic() - killed_at
        done_at_restart = sum(load.done)
        wait_for(lambda: sum(load.done) >= done_at_restart + 200 or None, what="load goes on")
    assert after[1] == before[1]  # the sibling was never touched
    assert gone(victim)
    # Each client connection held by the killed worker fails once (its request in
    # flight, or its next one on the dead socket); nothing else fails.
    assert all(errors <= 1 for errors in load.errors), load.errors
    print(
        f"\nrestart after SIGKILL: {restart_s:.2f} s; client errors {sum(load.errors)} "
        f"of {sum(load.done) + sum(load.errors)} requests on 4 connections"
    )


def test_sigterm_drains_the_group(tmp_path: Path) -> None:
    with instant_upstream() as upstream:
        group = start_group(tmp_path, upstream, "--workers", "2")
        pids = wait_for(lambda: group.all_up(2), what="two workers up")
        assert group.post()[0] == 200
        assert stop_group(group) == 0
        wait_for(lambda: all(gone(pid) for pid in pids) or None, timeout_s=5, what="workers gone")
        with pytest.raises(OSError):  # the port is closed with the last worker
            socket.create_connection(("127.0.0.1", group.port), timeout=2).close()


def test_one_worker_is_todays_single_process(tmp_path: Path) -> None:
    with instant_upstream() as upstream:
        group = start_group(tmp_path, upstream, "--workers", "1")
        try:
            assert "workers" not in group.health()
            assert group.post()[0] == 200
            assert children(group.proc.pid) == []
            assert 'worker="' not in group.get("/metrics")[1].decode()
        finally:
            assert stop_group(group) == 0


class Pings:
    """Every datagram on the notify socket, with its arrival time, until stopped."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def __enter__(self) -> Pings:
        self.sock.settimeout(0.1)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.seen.append((time.monotonic(), self.sock.recv(4096).decode()))

    def watchdog_times(self) -> list[float]:
        return [at for at, text in self.seen if text == "WATCHDOG=1"]


def test_a_wedged_worker_stops_the_watchdog_and_is_replaced(running: Running) -> None:
    group = running.group
    victim = group.worker_pids()[1]
    with Pings(running.notify) as pings:
        wait_for(lambda: len(pings.watchdog_times()) >= 2 or None, what="pings before")
        os.kill(victim, signal.SIGSTOP)  # a wedged event loop: alive, silent
        stopped_at = time.monotonic()
        wait_for(lambda: gone(victim) or None, what="the wedged worker killed")
        killed_at = time.monotonic()
        killed_s = killed_at - stopped_at

        def replaced() -> list[int] | None:
            pids = group.all_up(2)
            return pids if pids is not None and victim not in pids else None

        wait_for(replaced, what="its successor up")
        up_at = time.monotonic()
        wait_for(lambda: pings.watchdog_times()[-1] > up_at or None, what="pings resume")
    times = pings.watchdog_times()
    before = max(t for t in times if t <= killed_at)
    after = min(t for t in times if t > killed_at)
    # Pings every 0.2 s while all is well; none from the worker's 5 s of silence until
    # its successor is ready (a Python start: well over 0.5 s).
    assert after - before >= 0.5
    assert 4.0 <= killed_s <= 15.0  # silent for stale_s (5 s), then SIGKILL
    print(f"\nwedged worker killed after {killed_s:.1f} s; watchdog gap {after - before:.1f} s")


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "lasso.toml"
        config.write_text(
            '[chains.devnet]\nchain_id = 1\nproviders = [{ id = "a", url = "http://127.0.0.1:9" }]\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "lasso", "serve", "--config", str(config), "--port", str(port),
             "--workers", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"lasso: cannot listen on 127.0.0.1:{port}: address already in use"
    )
