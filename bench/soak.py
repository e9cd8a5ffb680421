"""Section ``soak``: the finished gateway under steady load, with a provider flapping.

The processes, each its own (``bench.procs.launched``):

- ``bench.soak_chain``: a lockstep devnet of three real anvil nodes mining a block
  every second, each node behind a cuttable TCP relay; node 2's relay is cut for
  3 s every 20 s (``--soak-fault outage`` also cuts all three for 3 s mid-run);
- ``bench.soak_gateway``: ``lasso.daemon.serve`` for a written config file: the
  three nodes as providers (HTTP and WebSocket), ``[metrics]`` on (as shipped),
  ``[logging] access_log = true`` into a file, the cache as shipped;
- ``bench.soak_subs``: ``--soak-clients`` WebSocket clients (50), each subscribed
  to ``newHeads`` throughout and checking every head is the next one;
- ``bench.soak_load``: the HTTP load, a realistic method mix.

The phases:

1. **peak**: a closed loop at c=16 for ``PEAK_S``: the most the stack serves now;
2. **warm-up**: open-loop load at half that peak for ``warmup`` seconds;
3. **baseline** (quiet): the load stops, the flapping pauses with every relay up, and
   once every provider is available again the gateway is sampled: VmRSS, open fds
   (``/proc/PID/fd``) and live trio tasks (``lasso_trio_tasks`` on ``/metrics``), the
   minimum of several scrapes a second apart (the subscriptions stay open);
4. **soak**: the flapping resumes and the open loop runs at half the peak for
   ``--soak-duration`` seconds, RSS sampled every few seconds;
5. **end** (quiet): the same measurement as the baseline; then the subscribers are
   stopped and their records read.

The verdicts: RSS at the end vs the baseline < +10 %; tasks and fds at the end minus
the baseline <= 0 (a leak is growth between two quiet moments with the same
connections open); zero HTTP errors in every phase (each answer a JSON-RPC success
with the request's id; a transport error or a 10 s timeout counts); every subscriber
saw every head from the one after it subscribed to the last one mined before it
stopped, in order, with no gap, duplicate or fork, and no transport error or stall.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import Child, launched, python_module, run_json
from bench.report import Column, Derived, Options, Section, SectionResult, Verdict

PEAK_S = 8.0
PEAK_CONNECTIONS = 16
PACED_CONNECTIONS = 64
SAMPLE_EVERY_S = 5.0
SCRAPE_EVERY_SAMPLES = 3  # /metrics scraped every 15 s during the soak, as Prometheus would
#: Settling is polled on /metrics. Sparingly: a request to a Quart route (/metrics,
#: /health) leaves about 28 KB of cyclic garbage, and with lasso.daemon.tune_gc's
#: generation-0 threshold of 50,000 a quiet gateway collects it only after several
#: hundred such requests (RSS then stays about 8 MB up: bounded, measured with 20,000
#: /health requests). Polling twice a second made the quiet samples themselves grow RSS.
SETTLE_POLL_S = 2.0
QUIET_SAMPLES = 5
SETTLE_TIMEOUT_S = 60.0
#: From every provider being available again to a quiet sample: an idle upstream HTTP
#: connection is kept for 30 s (HttpTransport keepalive_expiry_s) and reaped within the
#: next 15 s (lasso/upstream/probe.py), so after this the upstream pools hold only what
#: the gateway still uses (its upstream WebSockets), as at the baseline, and a descriptor
#: more is a leak, not a pool that grew with the load.
QUIET_S = 46.0
_TCP_LISTEN = 10
RSS_GROWTH_MAX_PCT = 10.0
CHAIN = "devnet"

CONFIG = """\
[server]
ws_idle_timeout_ms = 0

[logging]
access_log = true

[chains.{chain}]
chain_id = 31337
block_time_ms = 1000
providers = [
{providers}
]
"""

COLUMNS = [
    Column("criterion", "criterion"),
    Column("target", "target", left=True),
    Column("measured", "measured", left=True),
    Column("verdict", "verdict"),
]


def warmup_s(duration_s: float) -> float:
    """Warm-up before the baseline: a fifth of the soak, at least 10 s, at most 5 minutes."""
    return min(300.0, max(10.0, duration_s / 5))


def _config(nodes: list[dict[str, str]]) -> str:
    providers = ",\n".join(
        f'  {{ id = "n{i}", url = "{n["http"]}", ws_url = "{n["ws"]}", priority = {i} }}'
        for i, n in enumerate(nodes)
    )
    return CONFIG.format(chain=CHAIN, providers=providers)


def _get(port: int, path: str, body: bytes | None = None) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"content-type": "application/json"} if body else {},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        data: bytes = answer.read()
        return data


def block_number(port: int) -> int:
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
    return int(json.loads(_get(port, f"/rpc/{CHAIN}", body))["result"], 16)


_SAMPLE = re.compile(rb"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", re.MULTILINE)


def scrape(port: int) -> dict[str, list[tuple[str, float]]]:
    """``/metrics`` as {name: [(labels, value)]}."""
    out: dict[str, list[tuple[str, float]]] = {}
    for m in _SAMPLE.finditer(_get(port, "/metrics")):
        labels = (m.group(2) or b"").decode()
        out.setdefault(m.group(1).decode(), []).append((labels, float(m.group(3))))
    return out


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _socket_ports(pid: int) -> dict[str, tuple[int, int, int]]:
    """{inode: (local port, remote port, state)} of the process's TCP sockets."""
    out = {}
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{name}") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                local, remote = parts[1].rsplit(":", 1)[1], parts[2].rsplit(":", 1)[1]
                out[parts[9]] = (int(local, 16), int(remote, 16), int(parts[3], 16))
    return out


def fd_kinds(pid: int, port: int, upstream_ports: set[int]) -> dict[str, int]:
    """The process's descriptors by kind: client and upstream TCP connections, the
    listener, other sockets, pipes, files, anonymous inodes (epoll, eventfd)."""
    sockets, kinds = _socket_ports(pid), Counter[str]()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            local, remote, state = sockets.get(target[8:-1], (0, 0, 0))
            if state == _TCP_LISTEN:
                kinds["listen"] += 1
            elif local == port:
                kinds["client tcp"] += 1
            elif remote in upstream_ports:
                kinds["upstream tcp"] += 1
            else:
                kinds["other socket"] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        elif target.startswith("anon_inode:"):
            kinds[target] += 1
        else:
            kinds["file"] += 1
    return dict(sorted(kinds.items()))


def _chain_state(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _settled(port: int) -> bool:
    metrics = scrape(port)
    available = [v for _, v in metrics.get("lasso_provider_available", [])]
    lag = [v for _, v in metrics.get("lasso_provider_lag_blocks", [])]
    return bool(available) and all(v == 1 for v in available) and all(abs(v) <= 1 for v in lag)


def quiet_sample(
    gateway: Child, chain: Child, state: Path, baseline: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Pause the flapping, wait until every provider is available and then ``QUIET_S``
    more (idle upstream connections reaped), then sample tasks, fds and RSS.

    For the end sample (``baseline`` given), tasks or fds above the baseline are sampled
    again for up to another ``QUIET_S``: a connection used last by a breaker probe as the
    flapping stopped is reaped in that time, a leaked one never is."""
    os.kill(chain.pid, signal.SIGUSR1)
    started = time.monotonic()
    while True:
        doc = _chain_state(state)
        if doc["paused"] and not doc["cut_now"] and _settled(gateway.port):
            break
        if time.monotonic() - started > SETTLE_TIMEOUT_S:
            raise RuntimeError(f"soak: providers not all available after {SETTLE_TIMEOUT_S} s")
        time.sleep(SETTLE_POLL_S)
    settled = time.monotonic()
    time.sleep(QUIET_S)
    tasks: list[int] = []
    fds: list[int] = []
    rss: list[int] = []
    grace_until = time.monotonic() + QUIET_S
    while True:
        tasks.append(int(next(v for _, v in scrape(gateway.port)["lasso_trio_tasks"])))
        fds.append(open_fds(gateway.pid))
        rss.append(rss_kib(gateway.pid))
        enough = len(tasks) >= QUIET_SAMPLES
        if enough and (
            baseline is None
            or (min(tasks) <= baseline["tasks"] and min(fds) <= baseline["fds"])
            or time.monotonic() > grace_until
        ):
            break
        time.sleep(1.0)
    return {
        "tasks": min(tasks),
        "tasks_samples": tasks[-QUIET_SAMPLES:],
        "fds": min(fds),
        "fds_samples": fds[-QUIET_SAMPLES:],
        "rss_kib": int(statistics.median(rss[-QUIET_SAMPLES:])),
        "fd_kinds": fd_kinds(gateway.pid, gateway.port, _upstream_ports(state)),
        "settle_s": round(settled - started, 1),
        "quiet_s": round(time.monotonic() - settled, 1),
    }


def _upstream_ports(state: Path) -> set[int]:
    return {int(n["http"].rsplit(":", 1)[1]) for n in _chain_state(state)["nodes"]}


def _load(port: int, *args: object, timeout_s: float) -> dict[str, Any]:
    argv = python_module("bench.soak_load", "--port", port, "--path", f"/rpc/{CHAIN}", *args)
    result: dict[str, Any] = run_json("soak-load", argv, timeout_s)
    return result


def _paced(port: int, rate: float, duration_s: float) -> dict[str, Any]:
    return _load(
        port,
        "--rate",
        f"{rate:.1f}",
        "--connections",
        PACED_CONNECTIONS,
        "--duration",
        duration_s,
        timeout_s=duration_s + 120,
    )


def soak_run(opts: Options, workdir: Path) -> dict[str, Any]:
    """Every phase; returns the raw record (the verdicts are computed from it)."""
    duration = opts.soak_duration_s
    state = workdir / "chain.json"
    record: dict[str, Any] = {"duration_s": duration, "clients": opts.soak_clients}
    with launched("soak-chain", python_module("bench.soak_chain", state)) as chain:
        config = workdir / "lasso.toml"
        config.write_text(_config(_chain_state(state)["nodes"]))
        log = workdir / "access.log"
        leak = ["--inject-leak"] if opts.soak_fault == "leak" else []
        argv = python_module("bench.soak_gateway", config, log, *leak)
        with launched("soak-gateway", argv) as gateway:
            deadline = time.monotonic() + 30
            while not _settled(gateway.port):  # every provider up and at the head
                if time.monotonic() > deadline:
                    raise RuntimeError("soak: the gateway's providers never all came up")
                time.sleep(0.5)
            subs_file = workdir / "subs.json"
            url = f"ws://127.0.0.1:{gateway.port}/ws/rpc/{CHAIN}"
            argv = python_module("bench.soak_subs", url, opts.soak_clients, subs_file)
            with launched("soak-subs", argv):
                record["head_at_subscribe"] = block_number(gateway.port)
                peak = _load(
                    gateway.port,
                    "--closed",
                    PEAK_CONNECTIONS,
                    "--duration",
                    PEAK_S,
                    timeout_s=PEAK_S + 60,
                )
                rate = max(1.0, peak["rps"] / 2)
                record.update(peak=peak, rate=rate)
                record["warmup"] = _paced(gateway.port, rate, warmup_s(duration))
                record["baseline"] = quiet_sample(gateway, chain, state)
                os.kill(chain.pid, signal.SIGUSR2)  # flap again
                record["soak"], record["rss_trace_kib"] = _soak_phase(
                    opts, gateway, chain, rate, duration
                )
                record["end"] = quiet_sample(gateway, chain, state, record["baseline"])
                record["head_at_end"] = block_number(gateway.port)
                time.sleep(2.5)  # two more heads: the last one checked has reached everyone
                record["chain"] = _chain_state(state)
                record["log_bytes"] = log.stat().st_size if log.exists() else 0
            record["subs"] = json.loads(subs_file.read_text())
    return record


def _soak_phase(
    opts: Options, gateway: Child, chain: Child, rate: float, duration: float
) -> tuple[dict[str, Any], list[int]]:
    """The paced load in a thread while this one samples RSS (and injects the outage)."""
    box: dict[str, Any] = {}

    def load() -> None:
        try:
            box["result"] = _paced(gateway.port, rate, duration)
        except Exception as exc:  # re-raised below, in the harness's thread
            box["error"] = exc

    thread = threading.Thread(target=load, name="soak-load", daemon=True)
    trace, started, outage_done = [], time.monotonic(), False
    thread.start()
    while thread.is_alive():
        trace.append(rss_kib(gateway.pid))
        if len(trace) % SCRAPE_EVERY_SAMPLES == 1:
            scrape(gateway.port)  # as Prometheus would, every 15 s
        half_way = time.monotonic() - started > duration / 2
        if opts.soak_fault == "outage" and not outage_done and half_way:
            os.kill(chain.pid, signal.SIGHUP)  # every relay cut for 3 s
            outage_done = True
        thread.join(SAMPLE_EVERY_S)
    if "error" in box:
        raise box["error"]
    return box["result"], trace


def slope_kib_per_min(trace: list[int], every_s: float = SAMPLE_EVERY_S) -> float | None:
    """Least-squares slope of the RSS samples of the soak's second half, in KiB per minute:
    a leak climbs steadily; the garbage collector's sawtooth and a one-off high-water do not."""
    half = trace[len(trace) // 2 :]
    if len(half) < 3:
        return None
    xs = [i * every_s / 60 for i in range(len(half))]
    mx, my = statistics.fmean(xs), statistics.fmean(half)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, half, strict=True)) / var


def judge(record: dict[str, Any]) -> SectionResult:
    base, end = record["baseline"], record["end"]
    phases = [record["peak"], record["warmup"], record["soak"]]
    http_errors = sum(p["errors"] for p in phases)
    growth = (end["rss_kib"] - base["rss_kib"]) / base["rss_kib"] * 100
    leaked_tasks = end["tasks"] - base["tasks"]
    leaked_fds = end["fds"] - base["fds"]
    first_ok = record["head_at_subscribe"] + 2  # the first head after subscribing
    last_needed = record["head_at_end"]
    sub_errors, missed = 0, 0
    error_kinds: dict[str, int] = {}
    for sub in record["subs"]:
        sub_errors += sum(sub["errors"].values())
        for kind, n in sub["errors"].items():
            error_kinds[kind] = error_kinds.get(kind, 0) + n
        first, last = sub["first"], sub["last"]
        if first is None or last is None or first > first_ok or last < last_needed:
            missed += 1
    subs = len(record["subs"])
    soak = record["soak"]
    rows = [
        _row("RSS growth, warm-up to end", "< +10 %", f"{growth:+.1f} %", growth < 10),
        _row("leaked trio tasks", "0", f"{leaked_tasks:+d}", leaked_tasks <= 0),
        _row("leaked fds", "0", f"{leaked_fds:+d}", leaked_fds <= 0),
        _row("HTTP client errors", "0", f"{http_errors:,}", http_errors == 0),
        _row("subscriber errors", "0", f"{sub_errors:,}", sub_errors == 0),
        _row("subscribers with every head", f"{subs}", f"{subs - missed}", missed == 0),
    ]
    passed = all(r["verdict"] == "met" for r in rows)
    served = sum(p["answered"] for p in phases)
    rows += [
        _row("peak req/s (c=16, closed loop)", "", f"{record['peak']['rps']:,.0f}", None),
        _row("paced req/s (open loop, 50 %)", "", f"{soak['rps']:,.0f}", None),
        _row("requests served (all phases)", "", f"{served:,}", None),
        _row("soak p50 / p99 ms", "", f"{_ms(soak['p50_ms'])} / {_ms(soak['p99_ms'])}", None),
        _row(
            "flaps / outages", "", f"{record['chain']['cuts']} / {record['chain']['outages']}", None
        ),
    ]
    trace = record["rss_trace_kib"]
    notes = [
        f"baseline: {base['rss_kib']:,} KiB RSS, {base['tasks']} tasks, {base['fds']} fds "
        f"(samples {base['tasks_samples']} / {base['fds_samples']}); end: {end['rss_kib']:,} KiB, "
        f"{end['tasks']} tasks, {end['fds']} fds (samples {end['tasks_samples']} / "
        f"{end['fds_samples']}); RSS during the soak "
        f"{min(trace, default=0):,}-{max(trace, default=0):,} KiB; its slope over the second "
        f"half: {_slope_text(slope_kib_per_min(trace))}",
        f"fds by kind: baseline {base['fd_kinds']}, end {end['fd_kinds']}",
        f"heads {record['head_at_subscribe']}..{record['head_at_end']}; access log "
        f"{record['log_bytes']:,} bytes",
    ]
    for phase in ("peak", "warmup", "soak"):
        if record[phase]["errors"]:
            notes.append(
                f"{phase} errors: {record[phase]['error_kinds']} e.g. "
                f"{record[phase]['error_examples'][:2]}"
            )
    if error_kinds:
        examples = [e for s in record["subs"] for e in s["examples"]][:3]
        notes.append(f"subscriber errors by kind: {error_kinds}; e.g. {examples}")
    if missed:
        notes.append(
            f"{missed} of {subs} subscribers missed heads (first <= {first_ok}, "
            f"last >= {last_needed} needed)"
        )
    derived = [
        Derived("soak RSS growth", growth, " %", "+.1f"),
        Derived("soak leaked tasks", leaked_tasks, "", "+.0f"),
        Derived("soak leaked fds", leaked_fds, "", "+.0f"),
    ]
    verdict = Verdict(
        "soak",
        None,
        passed,
        shown=f"RSS {growth:+.1f} %, tasks {leaked_tasks:+d}, fds {leaked_fds:+d}, "
        f"errors {http_errors + sub_errors}, heads {subs - missed}/{subs}",
    )
    return SectionResult(rows, derived, notes, [verdict], raw=record)


def _slope_text(slope: float | None) -> str:
    return "n/a (too few samples)" if slope is None else f"{slope:+,.0f} KiB/min"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _row(criterion: str, target: str, measured: str, met: bool | None) -> dict[str, Any]:
    verdict = "" if met is None else ("met" if met else "NOT met")
    return {"criterion": criterion, "target": target, "measured": measured, "verdict": verdict}


def run(opts: Options) -> SectionResult:
    with tempfile.TemporaryDirectory(prefix="lasso-soak-") as tmp:
        return judge(soak_run(opts, Path(tmp)))


SECTION = Section(
    "soak",
    "Soak: half of peak load, newHeads subscribers, one provider flapping",
    COLUMNS,
    run,
)
