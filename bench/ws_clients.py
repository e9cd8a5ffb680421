"""A fan-out client worker: thousands of newHeads subscribers in one process.

The fan-out section starts a few of these (each its own process, so no GIL is
shared with the gateway or with each other). A worker listens on a control
port on 127.0.0.1, prints ``ready PORT``, and obeys newline-delimited JSON
commands from the harness, one connection at a time:

``{"cmd": "subscribe", "url": ..., "n": N, "concurrency": C, "timeout_s": T}``
    open N client WebSockets (hand-rolled, ``bench/ws_wire.py``), at most C
    handshakes at once, and send ``eth_subscribe ["newHeads"]`` on each.
    Answers ``{"subscribed", "failed", "failures", "elapsed_s"}`` once every
    client is subscribed or has failed, or at T.
``{"cmd": "wait", "number": H, "timeout_s": T}``
    answer ``{"received", "expected"}`` once every live client has head H, or at T.
``{"cmd": "report"}``
    every receive time, per head number, plus per-client anomalies (duplicates,
    gaps, foreign subscription ids, connections lost after subscribing).

Two receive times per message, both on the ``time.monotonic()`` scale (on
Linux CLOCK_MONOTONIC, one clock for the whole system, so the harness
subtracts the upstream's times read in another process):

* ``times``: when the bytes reached this client's socket: the kernel's receive
  timestamp (``SO_TIMESTAMPNS``, CLOCK_REALTIME, of the last segment of the
  read that completed the frame), moved to the monotonic scale. It does not
  depend on when this worker's own loop gets round to the client, so 5,000
  clients in one Python process do not add their parsing to the gateway's
  figure. The fan-out target is measured with it.
* ``app_times``: ``time.monotonic()`` once the ``recv()`` that completed the
  frame returns in the client's task (the only time this worker measured up to
  issue 13): it adds the worker's own turn on the CPU and its queue of clients.

    python -m bench.ws_clients         (prints ``ready PORT``)
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from bench.ws_wire import HandshakeError, WsClient, WsClosed, raise_nofile, split_url

_NUMBER = re.compile(rb'"number"\s*:\s*"0x([0-9a-fA-F]+)"')
_SUBSCRIBE = b'{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}'
_SUB_ID = re.compile(rb'"result"\s*:\s*"(0x[0-9a-fA-F]+)"')
_MAX_LINE = 64 * 2**20
#: Linux's SO_TIMESTAMPNS (== SCM_TIMESTAMPNS), not exported by the socket module:
#: each read's ancillary data carries the kernel's receive time as a timespec.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")


class StampedWsClient(WsClient):
    """A :class:`WsClient` that notes the kernel's receive time of what it reads."""

    stamp = 0.0  # the last read's kernel receive time, on the time.monotonic() scale

    def stamp_reads(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    async def _recv(self, size: int) -> bytes:
        data, ancillary, _, _ = await self.sock.recvmsg(size, 64)
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(value)
                self.stamp = sec + nsec * 1e-9 - (time.time() - time.monotonic())
        return data


class Lines:
    """Newline-delimited JSON over a TCP stream (the harness <-> worker control channel)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    async def send(self, obj: object) -> None:
        await self.stream.send_all(json.dumps(obj).encode() + b"\n")

    async def receive(self) -> Any:
        while (end := self._buf.find(b"\n")) < 0:
            if len(self._buf) > _MAX_LINE:
                raise ValueError("control line too long")
            chunk = await self.stream.receive_some(1 << 20)
            if not chunk:
                raise EOFError
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return json.loads(line)


class Fleet:
    """This worker's clients and everything they received."""

    def __init__(self) -> None:
        self.subscribed = 0
        self.failed: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()  # connections that ended after subscribing
        self.anomalies: Counter[str] = Counter()
        self.times: defaultdict[int, list[float]] = defaultdict(list)  # kernel receive times
        self.app_times: defaultdict[int, list[float]] = defaultdict(list)  # as the task saw it
        self.nursery: trio.Nursery | None = None
        self._changed = trio.Event()

    def alive(self) -> int:
        return self.subscribed - sum(self.lost.values())

    def changed(self) -> None:
        self._changed.set()

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` (re-checked whenever a client makes progress)."""
        while not done():
            self._changed = trio.Event()
            await self._changed.wait()

    async def client(self, url: str, limiter: trio.CapacityLimiter) -> None:
        host, port, target = split_url(url)
        try:
            async with limiter:
                ws = await StampedWsClient.connect(host, port, target)
                try:
                    ws.stamp_reads()
                    await ws.send_text(_SUBSCRIBE)
                    first = await ws.receive()
                    match = _SUB_ID.search(first[0])
                    if match is None:
                        raise HandshakeError(f"eth_subscribe answered {first[0][:160]!r}")
                except BaseException:
                    ws.close()
                    raise
        except (OSError, HandshakeError, WsClosed) as exc:
            self.failed[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
            self.changed()
            return
        self.subscribed += 1
        self.changed()
        with ws:
            await self._listen(ws, match.group(1), first[1:])

    async def _listen(self, ws: StampedWsClient, sub_id: bytes, messages: list[bytes]) -> None:
        last: int | None = None
        now = time.monotonic()
        stamp = ws.stamp or now
        try:
            while True:
                for message in messages:
                    found = _NUMBER.search(message)
                    if found is None or sub_id not in message[:160]:
                        self.anomalies[f"unexpected message: {message[:100]!r}"] += 1
                        continue
                    number = int(found.group(1), 16)
                    if last is not None and number <= last:
                        self.anomalies["duplicate or reordered head"] += 1
                        continue
                    if last is not None and number > last + 1:
                        self.anomalies["gap: heads skipped"] += 1
                    last = number
                    self.times[number].append(stamp)
                    self.app_times[number].append(now)
                    self.changed()
                messages = await ws.receive()
                now = time.monotonic()
                stamp = ws.stamp or now
        except (OSError, WsClosed) as exc:
            self.lost[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
            self.changed()


async def _subscribe(fleet: Fleet, command: dict[str, Any]) -> dict[str, Any]:
    assert fleet.nursery is not None
    n, started = int(command["n"]), time.monotonic()
    limiter = trio.CapacityLimiter(int(command.get("concurrency", 32)))
    before = fleet.subscribed + sum(fleet.failed.values())
    for _ in range(n):
        fleet.nursery.start_soon(fleet.client, command["url"], limiter)
    with trio.move_on_after(float(command.get("timeout_s", 60))):
        await fleet.until(lambda: fleet.subscribed + sum(fleet.failed.values()) - before >= n)
    return {
        "subscribed": fleet.subscribed,
        "failed": sum(fleet.failed.values()),
        "failures": dict(fleet.failed.most_common(5)),
        "elapsed_s": time.monotonic() - started,
    }


async def _wait(fleet: Fleet, command: dict[str, Any]) -> dict[str, Any]:
    number, started = int(command["number"]), time.monotonic()
    with trio.move_on_after(float(command.get("timeout_s", 20))):
        await fleet.until(lambda: len(fleet.times[number]) >= fleet.alive())
    return {
        "number": number,
        "received": len(fleet.times[number]),
        "expected": fleet.subscribed,
        "elapsed_s": time.monotonic() - started,
    }


def _report(fleet: Fleet) -> dict[str, Any]:
    return {
        "subscribed": fleet.subscribed,
        "times": {str(number): times for number, times in fleet.times.items()},
        "app_times": {str(number): times for number, times in fleet.app_times.items()},
        "lost": dict(fleet.lost.most_common(5)),
        "lost_count": sum(fleet.lost.values()),
        "anomalies": dict(fleet.anomalies.most_common(5)),
        "anomaly_count": sum(fleet.anomalies.values()),
    }


async def _control(fleet: Fleet, stream: trio.SocketStream) -> None:
    lines = Lines(stream)
    try:
        while True:
            command = await lines.receive()
            cmd = command.get("cmd")
            if cmd == "subscribe":
                await lines.send(await _subscribe(fleet, command))
            elif cmd == "wait":
                await lines.send(await _wait(fleet, command))
            elif cmd == "report":
                await lines.send(_report(fleet))
            else:
                await lines.send({"error": f"unknown command {cmd!r}"})
    except (EOFError, trio.BrokenResourceError):
        pass
    finally:
        await stream.aclose()


#: The workers run at the lowest CPU priority: on a machine whose cores the gateway shares
#: with them, 10,000 Python clients parsing every head would otherwise take the gateway's
#: core while it writes the head out. Their kernel receive times (``times``) do not wait
#: for them to run; they read everything once the gateway is idle again, before the
#: harness emits the next head.
NICE = 19


async def main() -> None:
    raise_nofile()
    os.nice(NICE)
    fleet = Fleet()
    async with trio.open_nursery() as nursery:
        fleet.nursery = nursery
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(_control, fleet), 0, host="127.0.0.1")
        )
        print(f"ready {listeners[0].socket.getsockname()[1]}", flush=True)


if __name__ == "__main__":
    trio.run(main)
