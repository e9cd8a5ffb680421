"""The soak's HTTP load: a realistic method mix, closed loop (peak) or paced (open loop).

    python -m bench.soak_load --port P --path /rpc/devnet --closed 16 --duration 8
    python -m bench.soak_load --port P --path /rpc/devnet --rate 300 --duration 120

prints one JSON object: requests, rps, p50_ms, p99_ms, errors by kind, per method.

The mix, repeated every ten requests: 3 ``eth_blockNumber``, 2
``eth_getBlockByNumber ["latest", false]``, 2 ``eth_getBalance``, 2 ``eth_call``
(an empty call to an account: ``"0x"``), 1 small ``eth_getLogs`` (the latest block).

``--closed C``: C keep-alive connections, one request at a time each: the most the
target serves at that concurrency (the soak's peak). ``--rate R``: open loop, request
``i`` is due at ``start + i / R`` whatever the answers do, taken by the first free of
``--connections`` keep-alive connections; latency runs from the request's due time (so
a stall is not hidden by the load slowing down with it). Every answer must be HTTP 200
with a JSON-RPC ``result`` and the request's id; anything else, a transport error or no
answer within ``--timeout`` seconds of its due time is an error (so the run ends at most
that long after its last request is due, however far behind it fell).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from bench.load import ProtocolError, percentile_ms, read_response

ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil's second dev account
_MIX: list[tuple[str, list[Any]]] = [
    ("eth_blockNumber", []),
    ("eth_getBlockByNumber", ["latest", False]),
    ("eth_getBalance", [ACCOUNT, "latest"]),
    ("eth_call", [{"to": ACCOUNT, "data": "0x"}, "latest"]),
    ("eth_blockNumber", []),
    ("eth_getLogs", [{"fromBlock": "latest", "toBlock": "latest"}]),
    ("eth_getBalance", [ACCOUNT, "latest"]),
    ("eth_getBlockByNumber", ["latest", False]),
    ("eth_call", [{"to": ACCOUNT, "data": "0x"}, "latest"]),
    ("eth_blockNumber", []),
]
_decode = msgspec.json.Decoder().decode


@dataclass
class Tally:
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    by_method: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail}"[:700])


class Conn:
    """One keep-alive connection; reconnects after a close or an error."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.sock: trio.socket.SocketType | None = None
        self.buf = bytearray()
        self.rid = 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def call(self, slot: int, due_ns: int, tally: Tally, timeout_s: float) -> None:
        method, params = _MIX[slot % len(_MIX)]
        self.rid += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self.rid, "method": method, "params": params},
            separators=(",", ":"),
        ).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        tally.by_method[method] += 1
        # The client's patience runs from the request's due time: a request that waited
        # for a free connection (the open loop's backlog) has less left, and one that
        # waited longer than the timeout is a timeout without being sent.
        left_s = timeout_s - (time.perf_counter_ns() - due_ns) / 1e9
        if left_s <= 0:
            tally.error("timeout", f"{method}: waited {timeout_s:g} s for a free connection")
            return
        try:
            with trio.fail_after(left_s):
                if self.sock is None:
                    self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buf = bytearray()
                    await self.sock.connect(("127.0.0.1", self.port))
                data = memoryview(head.encode() + body)
                while data:
                    data = data[await self.sock.send(data) :]
                status, answer, keep_alive = await read_response(self.sock, self.buf)
        except trio.TooSlowError:
            self.close()
            tally.error("timeout", f"{method}: no answer in {timeout_s:g} s")
            return
        except (OSError, ProtocolError, ValueError) as exc:
            self.close()
            tally.error("transport", f"{method}: {type(exc).__name__}: {exc}")
            return
        tally.latencies_ns.append(time.perf_counter_ns() - due_ns)
        if not keep_alive:
            self.close()
        try:
            doc = _decode(answer)
            ok = (
                status == 200
                and isinstance(doc, dict)
                and "result" in doc
                and "error" not in doc
                and doc.get("id") == self.rid
            )
        except msgspec.DecodeError:
            ok = False
        if not ok:
            tally.error(f"{method} HTTP {status}", answer[:600].decode(errors="replace"))


async def closed_loop(
    port: int, path: str, connections: int, duration_s: float, timeout_s: float
) -> tuple[Tally, float]:
    tally = Tally()
    stop_at = time.perf_counter() + duration_s

    async def worker(n: int) -> None:
        conn, slot = Conn(port, path), n
        try:
            while time.perf_counter() < stop_at:
                await conn.call(slot, time.perf_counter_ns(), tally, timeout_s)
                slot += 1
        finally:
            conn.close()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for n in range(connections):
            nursery.start_soon(worker, n)
    return tally, time.perf_counter() - started


async def open_loop(
    port: int, path: str, rate: float, connections: int, duration_s: float, timeout_s: float
) -> tuple[Tally, float]:
    tally = Tally()
    send, receive = trio.open_memory_channel[tuple[int, int]](math.inf)
    total = int(rate * duration_s)

    async def worker() -> None:
        conn = Conn(port, path)
        try:
            async for slot, due_ns in receive:
                await conn.call(slot, due_ns, tally, timeout_s)
        finally:
            conn.close()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(worker)
        async with send:
            t0 = time.perf_counter_ns()
            for i in range(total):
                due = t0 + int(i * 1e9 / rate)
                delay = (due - time.perf_counter_ns()) / 1e9
                if delay > 0:
                    await trio.sleep(delay)
                send.send_nowait((i, due))
    return tally, time.perf_counter() - started


def summary(tally: Tally, elapsed: float, **extra: Any) -> dict[str, Any]:
    latencies = sorted(tally.latencies_ns)
    requests = sum(tally.by_method.values())
    return {
        **extra,
        "requests": requests,
        "answered": len(latencies),
        "elapsed_s": round(elapsed, 3),
        "rps": requests / elapsed if elapsed else None,
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else None,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors.most_common(8)),
        "error_examples": tally.examples,
        "by_method": dict(tally.by_method),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_load", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/rpc/devnet")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--closed", type=int, help="closed loop on this many connections")
    mode.add_argument("--rate", type=float, help="open loop at this many requests/s")
    parser.add_argument("--connections", type=int, default=64, help="open loop: connections")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if args.closed:
        tally, elapsed = trio.run(
            closed_loop, args.port, args.path, args.closed, args.duration, args.timeout
        )
        print(json.dumps(summary(tally, elapsed, mode="closed", connections=args.closed)))
    else:
        tally, elapsed = trio.run(
            open_loop,
            args.port,
            args.path,
            args.rate,
            args.connections,
            args.duration,
            args.timeout,
        )
        print(json.dumps(summary(tally, elapsed, mode="open", rate=args.rate)))


if __name__ == "__main__":
    main()
