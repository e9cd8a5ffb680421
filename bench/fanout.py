"""Section ``fanout``: one upstream newHeads head delivered to N client subscriptions.

For each size N (``--fanout-sizes``, default 1,000 and 10,000), fresh processes:

    instant HTTP upstream   bench/instant_upstream.py (the provider's ``url``)
    WebSocket upstream      bench/ws_upstream.py      (its ``ws_url``; emits heads on command)
    gateway                 bench/ws_gateway.py       (lasso.daemon.serve, max_connections >= N)
    client workers          bench/ws_clients.py       (N/W hand-rolled WebSocket clients each)

1. wait until the gateway's upstream WebSocket is connected, then read the
   gateway's VmRSS (``/proc/PID/status``) with 0 clients;
2. the workers connect N clients to ``/ws/rpc/bench`` and subscribe each to
   ``["newHeads"]`` (timed, with the gateway's CPU over that phase); the
   upstream must then hold exactly one subscription, shared by all N;
3. after 1 s idle, VmRSS again: (RSS with N idle subscribers - RSS with 0) / N;
4. emit ``--fanout-heads`` heads one at a time, each once every live client
   has the previous one (or a bounded timeout), and per client and head take
   latency = the kernel's receive time on the client's socket - the time the
   upstream frame reached the gateway's socket (``bench/ws_clients.py``,
   ``bench/ws_upstream.py``), both on ``time.monotonic()``'s scale
   (CLOCK_MONOTONIC: one clock for every process on Linux). ``last ms`` is, per
   head, the time until the LAST client had it (its p99 over the heads): the
   fan-out target. ``app p99 ms`` keeps the definition used up to issue 13:
   client task's wake-up time - the upstream's emission time, which adds the
   client processes' own queue of 5,000 Python clients each.
"""

from __future__ import annotations

import contextlib
import math
import resource
import time
from typing import Any

import trio

from bench.procs import Child, cpu_seconds, launched, python_module
from bench.report import Column, Options, Row, Section, SectionResult
from bench.ws_clients import Lines
from bench.ws_wire import WsClient, call, connect, run_trio

CONNECT_CONCURRENCY = 32  # handshakes in flight per worker (the front end's listen backlog: 100)
HEAD_TIMEOUT_S = 15.0
LINK_TIMEOUT_S = 10.0
FD_RESERVE = 256  # descriptors a process needs besides its client sockets

COLUMNS = (
    Column("clients", "clients", ","),
    Column("subscribed", "subscribed", ","),
    Column("connect_s", "connect+sub s", ".1f"),
    Column("connect_rate", "clients/s", ",.0f"),
    Column("subscribe_cpu_us", "gw CPU µs/client", ",.0f"),
    Column("upstream_subs", "upstream subs"),
    Column("delivered", "delivered", ","),
    Column("expected", "expected", ","),
    Column("p50_ms", "p50 ms", ",.1f"),
    Column("p99_ms", "p99 ms", ",.1f"),
    Column("max_ms", "max ms", ",.1f"),
    Column("last_p99_ms", "last ms", ",.1f"),
    Column("app_p99_ms", "app p99 ms", ",.1f"),
    Column("cpu_us_per_msg", "gw CPU µs/msg", ",.1f"),
    Column("rss_base_mb", "RSS 0 MiB", ",.1f"),
    Column("rss_idle_mb", "RSS N MiB", ",.1f"),
    Column("rss_per_client_kb", "KiB/client", ",.1f"),
)


def vm_rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (kB there means KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def plan_size(size: int, workers: int, hard_limit: int) -> tuple[int, int, str | None]:
    """(clients, worker processes, note) that fit under the hard RLIMIT_NOFILE."""
    if hard_limit == resource.RLIM_INFINITY:
        return size, workers, None
    note = None
    clients = size
    if size + FD_RESERVE > hard_limit:  # the gateway holds one descriptor per client
        clients = max(1, hard_limit - FD_RESERVE)
        note = (
            f"{size:,} clients asked, {clients:,} measured: the hard RLIMIT_NOFILE is "
            f"{hard_limit:,} and the gateway needs one descriptor per client"
        )
    per_worker = max(1, hard_limit - FD_RESERVE)
    return clients, max(workers, math.ceil(clients / per_worker)), note


async def _each(channels: list[Lines], commands: list[dict[str, Any]]) -> list[Any]:
    """Send every worker its command at once; their answers, in worker order."""
    answers: list[Any] = [None] * len(channels)

    async def one(i: int) -> None:
        await channels[i].send(commands[i])
        answers[i] = await channels[i].receive()

    async with trio.open_nursery() as nursery:
        for i in range(len(channels)):
            nursery.start_soon(one, i)
    return answers


async def _wait_link(ctl: WsClient) -> None:
    """Until the gateway's upstream WebSocket is connected (the upstream counts it)."""
    with trio.fail_after(LINK_TIMEOUT_S):
        while True:
            stats = await call(ctl, "bench_stats", [])
            if stats["connections"] >= 1:
                return
            await trio.sleep(0.05)


async def _measure(
    clients: int, upstream: Child, gateway: Child, workers: list[Child], heads: int
) -> Row:
    subscribe_timeout_s = max(30.0, clients * 0.006)
    url = f"ws://127.0.0.1:{gateway.port}/ws/rpc/bench"
    shares = [clients // len(workers) + (i < clients % len(workers)) for i in range(len(workers))]
    async with contextlib.AsyncExitStack() as stack:
        ctl = stack.enter_context(await connect(f"ws://127.0.0.1:{upstream.port}/control"))
        await _wait_link(ctl)
        await trio.sleep(0.5)
        rss_base = vm_rss_kib(gateway.pid)
        channels = []
        for worker in workers:
            stream = await trio.open_tcp_stream("127.0.0.1", worker.port)
            await stack.enter_async_context(stream)
            channels.append(Lines(stream))

        cpu0, t0 = cpu_seconds(gateway.pid), time.monotonic()
        subscribed = await _each(
            channels,
            [
                {
                    "cmd": "subscribe",
                    "url": url,
                    "n": share,
                    "concurrency": CONNECT_CONCURRENCY,
                    "timeout_s": subscribe_timeout_s,
                }
                for share in shares
            ],
        )
        connect_s = time.monotonic() - t0
        subscribe_cpu_s = cpu_seconds(gateway.pid) - cpu0
        stats = await call(ctl, "bench_stats", [])
        await trio.sleep(1.0)
        rss_idle = vm_rss_kib(gateway.pid)

        emitted: dict[int, tuple[float, float]] = {}  # number -> (emitted_at, arrived_at)
        cpu1 = cpu_seconds(gateway.pid)
        for _ in range(heads):
            head = await call(ctl, "bench_emitHead", [])
            emitted[head["number"]] = (head["emitted_at"], head["arrived_at"])
            wait = {"cmd": "wait", "number": head["number"], "timeout_s": HEAD_TIMEOUT_S}
            await _each(channels, [wait] * len(channels))
        fanout_cpu_s = cpu_seconds(gateway.pid) - cpu1
        rss_after = vm_rss_kib(gateway.pid)
        reports = await _each(channels, [{"cmd": "report"}] * len(channels))
    return _row(
        clients,
        len(workers),
        subscribed,
        connect_s,
        subscribe_cpu_s,
        stats,
        emitted,
        reports,
        fanout_cpu_s,
        (rss_base, rss_idle, rss_after),
        head,
    )


def _row(
    clients: int,
    workers: int,
    subscribed: list[dict[str, Any]],
    connect_s: float,
    subscribe_cpu_s: float,
    stats: dict[str, Any],
    emitted: dict[int, tuple[float, float]],
    reports: list[dict[str, Any]],
    fanout_cpu_s: float,
    rss: tuple[int, int, int],
    head: dict[str, Any],
) -> Row:
    ok = sum(s["subscribed"] for s in subscribed)
    latencies = _latencies(reports, emitted, "times", 1)  # the target's definition
    app_latencies = _latencies(reports, emitted, "app_times", 0)  # the one before issue 13
    emit_latencies = _latencies(reports, emitted, "times", 0)
    delivered = len(latencies)
    rss_base, rss_idle, rss_after = rss
    failures: dict[str, int] = {}
    for s in subscribed:
        for kind, count in s["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    lost: dict[str, int] = {}
    anomalies: dict[str, int] = {}
    for report in reports:
        for kind, count in report["lost"].items():
            lost[kind] = lost.get(kind, 0) + count
        for kind, count in report["anomalies"].items():
            anomalies[kind] = anomalies.get(kind, 0) + count
    per_head_max = [
        max(
            (t - start[1] for r in reports for t in r["times"].get(str(number), [])),
            default=None,
        )
        for number, start in emitted.items()
    ]
    last = sorted(v for v in per_head_max if v is not None)
    return {
        "clients": clients,
        "workers": workers,
        "subscribed": ok,
        "failed": sum(s["failed"] for s in subscribed),
        "failures": failures,
        "connect_s": connect_s,
        "connect_rate": ok / connect_s if connect_s else None,
        "subscribe_cpu_us": subscribe_cpu_s / ok * 1e6 if ok else None,
        "upstream_subs": stats["subscriptions"],
        "upstream_connections": stats["connections"],
        "heads": len(emitted),
        "head_bytes": head["head_bytes"],
        "head_fields": head["head_fields"],
        "delivered": delivered,
        "expected": ok * len(emitted),
        "p50_ms": _ms(_percentile(latencies, 0.50)),
        "p99_ms": _ms(_percentile(latencies, 0.99)),
        "max_ms": _ms(latencies[-1] if latencies else None),
        "per_head_max_ms": [_ms(v) for v in per_head_max],
        "last_p99_ms": _ms(_percentile(last, 0.99)),
        "app_p50_ms": _ms(_percentile(app_latencies, 0.50)),
        "app_p99_ms": _ms(_percentile(app_latencies, 0.99)),
        "app_max_ms": _ms(app_latencies[-1] if app_latencies else None),
        "emit_p50_ms": _ms(_percentile(emit_latencies, 0.50)),
        "emit_p99_ms": _ms(_percentile(emit_latencies, 0.99)),
        "cpu_us_per_msg": fanout_cpu_s / delivered * 1e6 if delivered else None,
        "fanout_cpu_s": fanout_cpu_s,
        "rss_base_mb": rss_base / 1024,
        "rss_idle_mb": rss_idle / 1024,
        "rss_after_heads_mb": rss_after / 1024,
        "rss_per_client_kb": (rss_idle - rss_base) / ok if ok else None,
        "lost": lost,
        "anomalies": anomalies,
    }


def _latencies(
    reports: list[dict[str, Any]], emitted: dict[int, tuple[float, float]], key: str, start: int
) -> list[float]:
    """Sorted receive time (``key``: "times" or "app_times") - start time (``start``:
    0 the upstream's emission, 1 the frame's arrival at the gateway), per delivery."""
    return sorted(
        t - starts[start]
        for report in reports
        for number, starts in emitted.items()
        for t in report[key].get(str(number), [])
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def _cell(clients: int, workers: int, opts: Options) -> Row:
    with contextlib.ExitStack() as stack:

        def start(name: str, module: str, *args: object) -> Child:
            return stack.enter_context(launched(name, python_module(module, *args)))

        http = start("instant upstream", "bench.instant_upstream")
        ws = start("ws upstream", "bench.ws_upstream")
        gateway = start(
            "gateway",
            "bench.ws_gateway",
            f"http://127.0.0.1:{http.port}/",
            f"ws://127.0.0.1:{ws.port}/",
            clients,
        )
        fleet = [start(f"clients {i}", "bench.ws_clients") for i in range(workers)]
        budget_s = 60 + max(30.0, clients * 0.006) + opts.fanout_heads * (HEAD_TIMEOUT_S + 5)
        return run_trio(_bounded, budget_s, clients, ws, gateway, fleet, opts.fanout_heads)


async def _bounded(seconds: float, *args: Any) -> Row:
    with trio.fail_after(seconds):
        return await _measure(*args)


def _notes(rows: list[Row], notes: list[str]) -> list[str]:
    out = list(notes)
    for r in rows:
        n = f"{r['clients']:,} clients"
        if r["failed"]:
            out.append(f"{n}: {r['failed']:,} failed to subscribe: {r['failures']}")
        if r["delivered"] != r["expected"]:
            out.append(f"{n}: SHORTFALL {r['expected'] - r['delivered']:,} of {r['expected']:,}")
        if r["lost"]:
            out.append(f"{n}: connections lost after subscribing: {r['lost']}")
        if r["anomalies"]:
            out.append(f"{n}: anomalies: {r['anomalies']}")
        if r["upstream_subs"] > 2:  # the clients' one, and the gateway's own head tracking
            out.append(f"{n}: the upstream held {r['upstream_subs']} subscriptions, not 1-2")
        heads = ", ".join(f"{v:,.0f}" for v in r["per_head_max_ms"] if v is not None)
        out.append(
            f"{n} in {r['workers']} client processes: slowest delivery per head (ms): {heads}; "
            f"gateway RSS after the heads {r['rss_after_heads_mb']:,.1f} MiB"
        )
    if rows:
        r = rows[0]
        out.append(
            f"each head: {r['head_fields']} fields, {r['head_bytes']:,} bytes of JSON "
            "(anvil's live newHeads shape), number+1 and parentHash = previous hash"
        )
    return out + NOTES


def run(opts: Options) -> SectionResult:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    rows: list[Row] = []
    notes: list[str] = []
    for size in opts.fanout_sizes:
        clients, workers, note = plan_size(size, opts.fanout_workers, hard)
        if note:
            notes.append(note)
        rows.append(_cell(clients, workers, opts))
    return SectionResult(rows, [], _notes(rows, notes))


NOTES = [
    "latency (p50/p99/max, last) = kernel receive time on the client's socket (SO_TIMESTAMPNS) "
    "- the time the upstream frame was in the gateway's socket; 'last ms' = p99 over the heads "
    "of the time until the LAST client had the head; 'app p99 ms' = the client task's wake-up "
    "- upstream emission (the definition before issue 13: it adds each client process's own "
    "queue of clients); all on CLOCK_MONOTONIC's scale, system-wide on Linux",
    "gateway, upstream and client processes share this machine's cores; 'gw CPU µs/msg' is "
    "the gateway's utime+stime while the heads were delivered / messages delivered, "
    "'gw CPU µs/client' its CPU while the clients connected and subscribed / clients",
    "KiB/client = (gateway VmRSS with N subscribed idle clients - VmRSS with 0) / N; "
    "upstream subs = subscriptions the upstream held: 1 shared by all N clients, plus the "
    "gateway's own newHeads head tracking once it subscribed (lasso.upstream.heads)",
]


SECTION = Section("fanout", "newHeads fan-out to many WebSocket clients", COLUMNS, run)
