"""sd_notify (lasso.sdnotify) against a real AF_UNIX datagram socket standing in for
systemd's: what the daemon says, in which order, at which (virtual) times; a wedged event
loop sends no watchdog pings; a missing socket never raises into the daemon."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from lasso.config import DEFAULT_PROFILE
from lasso.gateway import Gateway
from lasso.reload import ReloadState, serve_reloads
from lasso.sdnotify import GatewayStatus, ReadyWhenStarted, SdNotify, run_notify
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS
from tests.support.asgi import asgi_request


class NotifySocket:
    """A bound datagram socket, as systemd's notify socket; ``received`` holds
    ``(trio.current_time(), datagram)`` for each datagram, once ``collect`` runs."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.received: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        """Every datagram waiting now (no waiting)."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out

    async def next(self) -> list[str]:
        """The datagrams that arrive next (waiting for one)."""
        await trio.lowlevel.wait_readable(self.sock)
        return self.drain()

    async def collect(self) -> None:
        while True:
            datagrams = await self.next()
            self.received.extend((trio.current_time(), datagram) for datagram in datagrams)

    def messages(self, *, pings: bool = False) -> list[tuple[float, str]]:
        return [(t, m) for t, m in self.received if pings or m != "WATCHDOG=1"]

    def pings(self) -> list[float]:
        return [t for t, m in self.received if m == "WATCHDOG=1"]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(str(tmp_path / "notify"))
    with sock.sock:
        yield sock


@pytest.fixture
async def collecting(listener: NotifySocket) -> AsyncIterator[NotifySocket]:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(listener.collect)
        yield listener
        nursery.cancel_scope.cancel()


def rounded(messages: list[tuple[float, str]], start: float) -> list[tuple[float, str]]:
    return [(round(t - start, 6), m) for t, m in messages]


# -- no socket, a broken socket ---------------------------------------------------------------


def test_without_notify_socket_nothing_is_sent() -> None:
    notify = SdNotify.take_from_environ({"WATCHDOG_USEC": "1000000"})
    assert not notify.enabled
    assert notify.watchdog_s is None  # no socket, no watchdog
    assert not notify.ready()
    assert not notify.watchdog()
    assert notify._sock is None  # not even a socket opened


def test_take_from_environ_reads_and_removes_the_variables(listener: NotifySocket) -> None:
    environ = {
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": str(os.getpid()),
        "PATH": "/usr/bin",
    }
    notify = SdNotify.take_from_environ(environ)
    assert (notify.address, notify.watchdog_s) == (listener.address, 15.0)
    assert environ == {"PATH": "/usr/bin"}  # a child process cannot take them for its own
    assert notify.ready("up")
    assert listener.drain() == ["READY=1\nSTATUS=up"]
    notify.close()


def test_an_abstract_socket_address() -> None:
    name = f"lasso-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        notify = SdNotify.take_from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notify.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        notify.close()


def test_a_missing_socket_never_raises_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify"
    notify = SdNotify(str(path))
    with caplog.at_level(logging.INFO, logger="lasso.sdnotify"):
        assert not notify.ready()
        assert not notify.watchdog()
        assert not notify.status("x")
        failures = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(failures) == 1
        assert "cannot notify systemd" in failures[0].getMessage()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            assert notify.watchdog()  # systemd is back: sending resumes
            assert sock.recv(4096) == b"WATCHDOG=1"
        assert caplog.records[-1].getMessage().endswith("again")
    notify.close()


def test_nothing_says_ready_once_stopping(listener: NotifySocket) -> None:
    """A stop signal during start-up or during a reload: the READY=1 that would follow is
    not sent (the service is going down); pings and status lines still are."""
    with SdNotify(listener.address) as notify:
        assert notify.stopping()
        assert not notify.ready()
        assert not notify.reloading()
        assert notify.watchdog()
        assert notify.status("stopping")
    assert listener.drain() == ["STOPPING=1", "WATCHDOG=1", "STATUS=stopping"]


def test_a_full_socket_buffer_never_blocks_nor_raises(listener: NotifySocket) -> None:
    notify = SdNotify(listener.address)
    results = [notify.status("x" * 1000) for _ in range(10_000)]  # nobody reads
    assert results[0]
    assert not all(results)  # the queue filled up: EAGAIN, dropped, not raised
    notify.close()


# -- the whole sequence, on the mock clock ----------------------------------------------------


async def test_the_sequence_ready_status_watchdog_reload_stopping(
    autojump_clock: trio.testing.MockClock,
    collecting: NotifySocket,
    gateway: Gateway,
    app: LassoASGI,
    tmp_path: Path,
) -> None:
    """Ready once the front end says it listens; a ping every WATCHDOG_USEC/2 (1 s); a status
    line every 5 s with the channels up and the calls that finished per second; RELOADING=1
    then READY=1 around every reload, rejected or not; STOPPING=1 when the drain begins, and
    pings through the drain."""
    start = trio.current_time()
    notify = SdNotify(collecting.address, watchdog_s=1.0, status_every_s=5.0)
    shutdown = trio.Event()
    config = tmp_path / "lasso.toml"
    config.write_text(SETTINGS)
    state = ReloadState(gateway.settings, source=str(config))
    send, receive = trio.open_memory_channel[object](1)

    async def apply(_outcome: object) -> None:
        raise AssertionError("nothing to apply: the file is bad or unchanged")

    with notify:
        async with trio.open_nursery() as nursery:
            status = GatewayStatus(gateway, trio.current_time())
            nursery.start_soon(run_notify, notify, status, shutdown)
            nursery.start_soon(lambda: serve_reloads(receive, config, state, apply, notify=notify))
            # The front end listens (FrontServer.serve calls started with its URLs).
            ReadyWhenStarted(trio.TASK_STATUS_IGNORED, notify, status, shutdown).started(
                ["http://x"]
            )
            await trio.sleep(1.5)  # t = 1.5: ten calls finish (errors would count too)
            for n in range(10):
                body = b'{"jsonrpc":"2.0","id":%d,"method":"eth_chainId","params":[]}' % n
                assert (await asgi_request(app, "POST", "/rpc/testnet", body)).status == 200
            await trio.sleep(5.0)  # t = 6.5: one breaker opens
            chain = gateway.profiles[DEFAULT_PROFILE]["testnet"]
            chain.providers["p2"].channel("http").breaker.force_open(trio.current_time(), 60_000)
            await trio.sleep(4.0)  # t = 10.5
            config.write_text("[chains.testnet]\nchain_id = 'one'\n")
            await send.send("SIGHUP")  # rejected
            await trio.sleep(1.0)  # t = 11.5
            config.write_text(SETTINGS)
            await send.send("SIGHUP")  # unchanged
            await trio.sleep(1.0)  # t = 12.5
            shutdown.set()
            await trio.sleep(2.25)  # t = 14.75: the drain goes on, so do the pings
            nursery.cancel_scope.cancel()
    await trio.lowlevel.checkpoint()  # the last datagrams in

    assert rounded(collecting.messages(), start) == [
        (0.0, "READY=1\nSTATUS=serving: 4/4 provider channels up, 0.0 req/s"),
        (5.0, "STATUS=serving: 4/4 provider channels up, 2.0 req/s"),  # 10 calls in 5 s
        (10.0, "STATUS=serving: 3/4 provider channels up, 0.0 req/s"),
        (10.5, f"RELOADING=1\nMONOTONIC_USEC={_usec(collecting, 3)}\nSTATUS=reloading {config}"),
        (10.5, "READY=1\nSTATUS=reload rejected: serving config generation 1"),
        (11.5, f"RELOADING=1\nMONOTONIC_USEC={_usec(collecting, 5)}\nSTATUS=reloading {config}"),
        (11.5, "READY=1\nSTATUS=reload unchanged: serving config generation 1"),
        (12.5, "STOPPING=1\nSTATUS=stopping: draining in-flight requests"),
    ]
    assert [round(t - start, 6) for t in collecting.pings()] == [float(s) for s in range(15)]


def _usec(sock: NotifySocket, index: int) -> str:
    """The MONOTONIC_USEC the index-th non-ping message carried (real CLOCK_MONOTONIC µs,
    checked to be a plausible recent reading)."""
    message = sock.messages()[index][1]
    usec = message.split("MONOTONIC_USEC=")[1].split("\n")[0]
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert 0 < now - int(usec) < 60_000_000
    return usec


async def test_a_statistics_bug_never_reaches_the_daemon(
    autojump_clock: trio.testing.MockClock,
    collecting: NotifySocket,
    gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A component whose statistics() raises costs the status line, nothing else: READY=1
    and the pings still go out, and the daemon's nursery sees no exception."""
    start = trio.current_time()
    chain = gateway.profiles[DEFAULT_PROFILE]["testnet"]

    def broken(now: float) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(chain, "statistics", broken)
    shutdown = trio.Event()
    with SdNotify(collecting.address, watchdog_s=1.0, status_every_s=2.0) as notify:
        async with trio.open_nursery() as nursery:
            status = GatewayStatus(gateway, start)
            nursery.start_soon(run_notify, notify, status, shutdown)
            ReadyWhenStarted(trio.TASK_STATUS_IGNORED, notify, status, shutdown).started([])
            await trio.sleep(4.5)
            nursery.cancel_scope.cancel()
    assert rounded(collecting.messages(), start) == [(0.0, "READY=1")]
    assert [round(t - start, 6) for t in collecting.pings()] == [0, 1, 2, 3, 4]
    assert [r.getMessage() for r in caplog.records].count("no status line for systemd") == 3


# -- a wedged loop sends no pings -------------------------------------------------------------


async def test_a_wedged_loop_stops_the_pings_on_the_mock_clock(
    autojump_clock: trio.testing.MockClock, collecting: NotifySocket, gateway: Gateway
) -> None:
    """The loop is blocked for 5 watchdog periods (virtual time passes, no task runs): no
    ping in that time, one when it unblocks, then one per period again."""
    start = trio.current_time()
    notify = SdNotify(collecting.address, watchdog_s=1.0)
    with notify:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_notify, notify, GatewayStatus(gateway, start), trio.Event())
            await trio.sleep(2.5)
            autojump_clock.jump(5.0)  # wedged: no checkpoint while 5 s pass
            assert collecting.drain() == []
            await trio.sleep(2.75)
            nursery.cancel_scope.cancel()
    assert [round(t - start, 6) for t in collecting.pings()] == [0, 1, 2, 7.5, 8.5, 9.5]


@pytest.mark.slow
async def test_a_wedged_loop_stops_the_pings_in_real_time(
    listener: NotifySocket, gateway: Gateway
) -> None:
    """A task blocks the real event loop (time.sleep) for 10 ping periods: the socket gets
    no WATCHDOG=1 meanwhile (the pings come from the loop, not from a thread); once the loop
    runs again, so do the pings."""
    period = 0.02
    notify = SdNotify(listener.address, watchdog_s=period)
    with notify:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_notify, notify, GatewayStatus(gateway, 0.0), trio.Event())
            with trio.fail_after(10):
                while "WATCHDOG=1" not in await listener.next():  # pinging
                    pass
            wedged = []
            for _ in range(10):
                time.sleep(period)  # the wedge: no checkpoint in here  # noqa: ASYNC251
                wedged += listener.drain()
            assert wedged == []
            after: list[str] = []
            with trio.fail_after(10):
                while after.count("WATCHDOG=1") < 3:  # pinging again
                    after += await listener.next()
            nursery.cancel_scope.cancel()


# -- the wiring in lasso.daemon.serve ---------------------------------------------------------


async def test_a_stop_before_the_front_end_listens_is_never_followed_by_ready(
    listener: NotifySocket, tmp_path: Path
) -> None:
    """The stop signal came while the gateway was starting: serve() drains at once, and
    systemd hears STOPPING=1 and never READY=1."""
    from lasso.config import parse_settings
    from lasso.daemon import serve

    settings = parse_settings(
        '[chains.devnet]\nchain_id = 31337\nproviders = [{ id = "a", url = "http://127.0.0.1:9" }]\n',
        env={},
    )
    shutdown = trio.Event()
    shutdown.set()
    with SdNotify(listener.address) as notify, trio.fail_after(10):
        await serve(settings, port=0, shutdown=shutdown, notify=notify)
    assert listener.drain() == ["STOPPING=1\nSTATUS=stopping: draining in-flight requests"]
