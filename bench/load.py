"""A lean closed-loop HTTP/1.1 load generator on trio (wrk is not assumed).

``N`` keep-alive connections each send one JSON-RPC POST, wait for the whole
answer, and send the next: a closed loop, so the offered load is whatever the
target can take at that concurrency. After a warm-up the run records every
request that completes inside the measurement window (latency from
``time.perf_counter_ns`` before the send to the last byte of the answer) and
samples the CPU of the processes named by ``--watch-pid`` at the window's
edges, so CPU per request covers exactly the requests counted.

Hand-rolled on raw trio sockets (one ``send``, ``recv`` into a buffer,
Content-Length or chunked framing) because the client must cost much less
than the servers it measures; it still costs about as much as the fastest
targets, which is why CPU per request, not requests/s, is the figure to trust.

    python -m bench.load --port P [--path /] [-c 16] [--body JSON] [--duration 4] [--warmup 1]
                         [--watch-pid PID ...]

prints one JSON object: count, duration_s, rps, p50_ms, p99_ms, errors, ...
"""

from __future__ import annotations

import argparse
import json
import math
import re
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from bench.procs import cpu_seconds, machine_cpu_ticks

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


class ProtocolError(Exception):
    pass


def request_bytes(port: int, path: str, body: bytes = BODY) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Window:
    """What the workers record; ``recording`` is on only inside the window."""

    recording: bool = False
    reconnects: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def record(self, started_ns: int, status: int, body: bytes) -> None:
        if self.recording:
            self.latencies_ns.append(time.perf_counter_ns() - started_ns)
            if status != 200 or b'"result"' not in body:
                self.errors[f"HTTP {status}: {body[:120]!r}"] += 1

    def fail(self, exc: Exception) -> None:
        if self.recording:
            self.errors[f"{type(exc).__name__}: {exc}"] += 1


async def _fill(sock: trio.socket.SocketType, buf: bytearray) -> None:
    chunk = await sock.recv(65536)
    if not chunk:
        raise ProtocolError("connection closed by the server")
    buf += chunk


async def _read_exact(sock: trio.socket.SocketType, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        await _fill(sock, buf)
    data = bytes(buf[:n])
    del buf[:n]
    return data


async def _read_line(sock: trio.socket.SocketType, buf: bytearray) -> bytes:
    while (end := buf.find(b"\r\n")) < 0:
        await _fill(sock, buf)
    return (await _read_exact(sock, buf, end + 2))[:-2]


async def _read_chunked(sock: trio.socket.SocketType, buf: bytearray) -> bytes:
    parts = []
    while size := int((await _read_line(sock, buf)).split(b";")[0], 16):
        parts.append((await _read_exact(sock, buf, size + 2))[:-2])
    while await _read_line(sock, buf):  # trailers, then the empty line
        pass
    return b"".join(parts)


async def read_response(sock: trio.socket.SocketType, buf: bytearray) -> tuple[int, bytes, bool]:
    """Read one response from ``buf`` + ``sock``; return (status, body, keep_alive)."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        await _fill(sock, buf)
    head = await _read_exact(sock, buf, end + 4)
    status, keep_alive = int(head[9:12]), not _CLOSE.search(head)
    if match := _CONTENT_LENGTH.search(head):
        return status, await _read_exact(sock, buf, int(match.group(1))), keep_alive
    if _CHUNKED.search(head):
        return status, await _read_chunked(sock, buf), keep_alive
    raise ProtocolError("response has neither content-length nor chunked framing")


async def _connect(port: int) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await sock.connect(("127.0.0.1", port))
    return sock


async def _send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await sock.send(view) :]


async def worker(port: int, request: bytes, window: Window) -> None:
    """One connection, one request at a time; reconnect when the server closes it."""
    while True:
        try:
            sock = await _connect(port)
        except OSError as exc:
            window.fail(exc)
            await trio.sleep(0.05)
            continue
        with sock:
            buf = bytearray()
            try:
                keep_alive = True
                while keep_alive:
                    started = time.perf_counter_ns()
                    await _send_all(sock, request)
                    status, body, keep_alive = await read_response(sock, buf)
                    window.record(started, status, body)
                # The server said "connection: close" (hypercorn does so after
                # keep_alive_max_requests, 1000 by default): reconnect, as wrk does.
                window.reconnects += window.recording
            except (OSError, ProtocolError, ValueError) as exc:
                window.fail(exc)


def percentile_ms(sorted_ns: list[int], q: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_ns:
        return None
    return sorted_ns[max(0, math.ceil(q * len(sorted_ns)) - 1)] / 1e6


class Recorder(Protocol):
    """What a load generator's window exposes to :func:`run_window`."""

    recording: bool
    reconnects: int
    latencies_ns: list[int]
    errors: Counter[str]


async def run_window(
    start: Callable[[trio.Nursery], None],
    window: Recorder,
    duration_s: float,
    warmup_s: float,
    pids: list[int],
) -> dict[str, object]:
    """Start the workers, warm up, record for ``duration_s``, and summarise."""
    async with trio.open_nursery() as nursery:
        start(nursery)
        await trio.sleep(warmup_s)
        cpu0, machine0 = {pid: cpu_seconds(pid) for pid in pids}, machine_cpu_ticks()
        self0, t0 = time.process_time(), time.perf_counter()
        window.recording = True
        await trio.sleep(duration_s)
        window.recording = False
        elapsed, self_cpu = time.perf_counter() - t0, time.process_time() - self0
        cpu = {str(pid): cpu_seconds(pid) - cpu0[pid] for pid in pids}
        machine = [b - a for a, b in zip(machine0, machine_cpu_ticks(), strict=True)]
        nursery.cancel_scope.cancel()
    latencies = sorted(window.latencies_ns)
    return {
        "duration_s": round(elapsed, 3),
        "count": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
        "errors": sum(window.errors.values()),
        "error_kinds": dict(window.errors.most_common(5)),
        "reconnects": window.reconnects,
        "cpu_s": cpu,
        "loadgen_cpu_s": self_cpu,
        "machine_busy_pct": 100 * machine[0] / machine[1] if machine[1] else None,
    }


def add_window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--watch-pid", type=int, action="append", default=[])


async def measure(
    port: int,
    path: str,
    connections: int,
    duration_s: float,
    warmup_s: float,
    pids: list[int],
    body: bytes = BODY,
) -> dict[str, object]:
    window = Window()
    request = request_bytes(port, path, body)

    def start(nursery: trio.Nursery) -> None:
        for _ in range(connections):
            nursery.start_soon(worker, port, request, window)

    summary = await run_window(start, window, duration_s, warmup_s, pids)
    return {"connections": connections, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="target port on 127.0.0.1")
    parser.add_argument("--path", default="/")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("--body", help="the JSON-RPC request body (default: eth_blockNumber)")
    add_window_options(parser)
    args = parser.parse_args()
    body = BODY if args.body is None else args.body.encode()
    result = trio.run(
        measure,
        args.port,
        args.path,
        args.connections,
        args.duration,
        args.warmup,
        args.watch_pid,
        body,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
