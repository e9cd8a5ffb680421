"""``python -m bench``: run the benchmark sections, print tables, save JSON.

    python -m bench [--only SECTION ...] [--duration S] [--warmup S]
                    [--fanout-sizes N,N] [--fanout-heads H] [--fanout-workers W]
                    [--json PATH]

Sections run in order; each starts and stops its own processes. Results go
to stdout and to ``bench/results/latest.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    biglogs,
    cache,
    clients,
    fanout,
    forwarding,
    metrics,
    obscost,
    routing,
    soak,
    workers,
    ws,
)
from bench.report import Options, Section, SectionResult, render_section, save_json
from bench.summary import render_summary, summarize

SECTIONS: list[Section] = [
    forwarding.SECTION,
    clients.SECTION,
    routing.SECTION,
    ws.SECTION,
    fanout.SECTION,
    metrics.SECTION,
    obscost.SECTION,
    cache.SECTION,
    workers.SECTION,
    biglogs.SECTION,
    soak.SECTION,
]
PACKAGES = ("lasso", "trio", "hypercorn", "quart-trio", "httpx", "httpcore", "h11", "msgspec")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    names = [s.name for s in SECTIONS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=names, help="run only these sections")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell")
    parser.add_argument(
        "--fanout-sizes",
        type=_sizes,
        default=Options.fanout_sizes,
        help="client subscriptions per fan-out cell, comma-separated (default 1000,10000)",
    )
    parser.add_argument(
        "--fanout-heads", type=_positive, default=Options.fanout_heads, help="heads per cell"
    )
    parser.add_argument(
        "--fanout-workers",
        type=_positive,
        default=Options.fanout_workers,
        help="client processes per fan-out cell",
    )
    parser.add_argument(
        "--soak-duration",
        type=float,
        default=Options.soak_duration_s,
        help="seconds of paced load in the soak (default 120; the issue's hour: 3600)",
    )
    parser.add_argument(
        "--soak-clients",
        type=_positive,
        default=Options.soak_clients,
        help="newHeads WebSocket subscribers open throughout the soak",
    )
    parser.add_argument(
        "--soak-fault",
        choices=("leak", "outage"),
        help="inject a breach the soak must report: a task+fd+memory leak in the gateway, "
        "or every provider cut for 3 s mid-soak",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(_positive(part.replace("_", "")) for part in text.split(",") if part.strip())


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _meta(opts: Options, loadavg: float) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": {name: _version(name) for name in PACKAGES},
        "loadavg_1m_at_start": loadavg,
        "duration_s": opts.duration_s,
        "warmup_s": opts.warmup_s,
        "concurrencies": list(opts.concurrencies),
        "fanout_sizes": list(opts.fanout_sizes),
        "fanout_heads": opts.fanout_heads,
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every launched() block


def main() -> int:
    args = _parser().parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    opts = Options(
        duration_s=args.duration,
        warmup_s=args.warmup,
        fanout_sizes=args.fanout_sizes,
        fanout_heads=args.fanout_heads,
        fanout_workers=args.fanout_workers,
        soak_duration_s=args.soak_duration,
        soak_clients=args.soak_clients,
        soak_fault=args.soak_fault,
    )
    chosen = [s for s in SECTIONS if not args.only or s.name in args.only]
    loadavg = os.getloadavg()[0]
    print(
        f"lasso bench: {os.cpu_count()} CPUs, load average {loadavg:.2f} at start, "
        f"{opts.duration_s:g} s per cell after {opts.warmup_s:g} s warm-up\n"
        "All processes (load generator, target, upstream) share this machine's cores: "
        "req/s and latency are relative to this run; CPU µs/request is the "
        "machine-independent figure.\n",
        flush=True,
    )
    results: dict[str, SectionResult] = {}
    failed: dict[str, str] = {}
    started = time.monotonic()
    for section in chosen:
        section_started = time.monotonic()
        try:
            results[section.name] = section.run(opts)
        except Exception as exc:  # one broken section must not hide the others' figures
            failed[section.name] = f"{type(exc).__name__}: {exc}"
            print(f"== {section.title} ({section.name}) ==\nFAILED: {failed[section.name]}\n")
            continue
        took = time.monotonic() - section_started
        print(render_section(section, results[section.name]), flush=True)
        print(f"  ({section.name}: {took:.0f} s)\n", flush=True)
    summary = summarize(results, failed)
    save_json(args.json, _meta(opts, loadavg), results, summary, failed)
    elapsed, loadavg_end = time.monotonic() - started, os.getloadavg()[0]
    print(render_summary(summary), flush=True)
    print(f"wrote {args.json} ({elapsed:.0f} s; load average {loadavg_end:.2f} at end)")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # every child has been stopped on the way out
        print("\ninterrupted; all benchmark processes stopped", file=sys.stderr)
        sys.exit(130)
