"""Section ``metrics``: what ``/metrics`` costs the request path, on against off.

Two kinds of rows, both measured in this run so the ratios compare like with like:

    observe   µs per finished call spent in the gateway's request observers
              (``OpsEvents.observe``): with no observer (``[metrics] enabled =
              false``) and with Lasso's (``lasso.metrics.requests``), for a call
              served first time and one that failed over once. Timed with
              ``timeit`` (garbage collector off), median of repeats. One more row
              times a whole scrape (``Metrics.render``) of a gateway with 3 chains.
    gateway   the real gateway (``bench.gateway_target``: ``lasso.daemon.serve`` on
              a loopback port) against the instant upstream, driven by the load
              generator, with metrics on and with ``[metrics] enabled = false``,
              alternated (off, on, off, on) at each concurrency: req/s, CPU µs per
              request, p50.
"""

from __future__ import annotations

import random
import statistics
import timeit
from functools import partial

import trio

from bench.forwarding import _cell as load_cell
from bench.procs import launched, python_module
from bench.report import Column, Derived, Options, Row, Section, SectionResult, ratio
from bench.routing import time_per_call_us
from lasso.callmeta import CallMeta
from lasso.config import parse_settings
from lasso.core.router import RoutePlan, Strategy
from lasso.gateway import Gateway
from lasso.metrics import Metrics
from lasso.opsevents import OpsEvents
from lasso.outcome import AttemptRecord, Outcome

ROUNDS = 1  # off/on pairs per concurrency (the obscost section repeats its own pair 4 times)

SETTINGS = "\n".join(
    f"[chains.c{n}]\nchain_id = {n + 1}\nhead_poll_ms = 0\nproviders = [\n"
    + ",\n".join(f'{{ id = "p{i}", url = "http://p{i}.invalid" }}' for i in range(3))
    + "\n]\n"
    for n in range(3)
)


def _meta(method: str, *, failed_over: bool) -> CallMeta:
    """A finished call's record, as the gateway hands it to its observers."""
    meta = CallMeta("c0", method, trio.current_time(), profile="default")
    plan = RoutePlan(
        strategy=Strategy.LOAD_BALANCED,
        channels=(),
        max_attempts=3,
        deadline_s=2.0,
        replay_safe=True,
        failover=True,
    )
    outcome = Outcome(provider="p1", transport="http", upstream_latency_us=1_250)
    if failed_over:
        outcome.attempts.append(AttemptRecord("p0", "http", "provider_failure", "reset"))
    meta.planned(plan, outcome)
    meta.finish()
    return meta


def _observe_rows() -> list[Row]:
    rows: list[Row] = []

    async def measure() -> None:
        gateway = Gateway(parse_settings(SETTINGS, env={}), rng=random.Random(1))
        plain = _meta("eth_blockNumber", failed_over=False)
        failed = _meta("eth_call", failed_over=True)
        off = OpsEvents()
        metrics = Metrics(gateway)
        on = gateway.events
        for label, events in (("off", off), ("on", on)):
            for what, meta in (("observe", plain), ("observe, failed over once", failed)):
                samples = time_per_call_us(timeit.Timer(partial(events.observe, meta)))
                rows.append(_micro(what, label, samples))
        for n in range(200):  # series to render: methods x providers x results
            meta = _meta(
                ["eth_call", "eth_getBalance", "eth_blockNumber"][n % 3], failed_over=n % 7 == 0
            )
            meta.chain = f"c{n % 3}"
            on.observe(meta)
        samples = time_per_call_us(timeit.Timer(metrics.render))
        rows.append(_micro("scrape (Metrics.render)", "on", samples))
        metrics.close()

    trio.run(measure)
    return rows


def _micro(what: str, variant: str, samples: list[float]) -> Row:
    return {
        "kind": "observe",
        "what": what,
        "metrics": variant,
        "us": statistics.median(samples),
        "min_us": min(samples),
    }


def _gateway_rows(opts: Options) -> list[Row]:
    rows: list[Row] = []
    with launched("instant upstream", python_module("bench.instant_upstream")) as upstream:
        url = f"http://127.0.0.1:{upstream.port}/"
        for conc in opts.concurrencies:
            for _ in range(ROUNDS):
                for variant, mode in (("off", "nometrics"), ("on", "fast")):
                    argv = python_module("bench.gateway_target", url, mode)
                    with launched(f"gateway metrics {variant}", argv) as child:
                        cell = load_cell(
                            f"metrics {variant}", child, "/rpc/bench", upstream, conc, opts
                        )
                    rows.append(
                        {
                            "kind": "gateway",
                            "what": f"c={conc}",
                            "metrics": variant,
                            "concurrency": conc,
                            "rps": cell["rps"],
                            "cpu_us": cell["cpu_us"],
                            "p50_ms": cell["p50_ms"],
                            "errors": cell["errors"],
                        }
                    )
    return rows


def _mean(rows: list[Row], key: str, **match: object) -> float | None:
    values = [
        r[key]
        for r in rows
        if all(r.get(k) == v for k, v in match.items()) and r.get(key) is not None
    ]
    return statistics.fmean(values) if values else None


def _derived(rows: list[Row], opts: Options) -> list[Derived]:
    out = []
    for what in ("observe", "observe, failed over once"):
        on = _mean(rows, "us", what=what, metrics="on")
        off = _mean(rows, "us", what=what, metrics="off")
        added = None if on is None or off is None else on - off
        out.append(Derived(f"{what}: µs added per call by metrics", added, " µs", ".2f"))
    for conc in opts.concurrencies:
        match = {"kind": "gateway", "concurrency": conc}
        rps_on, rps_off = (
            _mean(rows, "rps", metrics="on", **match),
            _mean(rows, "rps", metrics="off", **match),
        )
        cpu_on, cpu_off = (
            _mean(rows, "cpu_us", metrics="on", **match),
            _mean(rows, "cpu_us", metrics="off", **match),
        )
        out.append(
            Derived(f"c={conc:<2} req/s metrics on / off", ratio(rps_on, rps_off), "x", ".3f")
        )
        out.append(
            Derived(f"c={conc:<2} CPU µs/req metrics on / off", ratio(cpu_on, cpu_off), "x", ".3f")
        )
    return out


def run(opts: Options) -> SectionResult:
    rows = _observe_rows() + _gateway_rows(opts)
    notes = [
        "observe rows: median of repeats of ~50 ms each (timeit, GC off); 'off' is the gateway "
        "with [metrics] enabled = false (no request observer), 'on' is Lasso's observer",
        f"gateway rows: {ROUNDS} alternated off/on pairs per concurrency, each its own gateway "
        "process; ratios use the means; req/s depends on what else runs on the machine, CPU "
        "µs/req much less",
    ]
    return SectionResult(rows, _derived(rows, opts), notes)


COLUMNS = (
    Column("kind", "kind"),
    Column("what", "what"),
    Column("metrics", "metrics"),
    Column("us", "µs/call", ".3f"),
    Column("min_us", "min µs", ".3f"),
    Column("rps", "req/s", ",.0f"),
    Column("cpu_us", "CPU µs/req", ",.0f"),
    Column("p50_ms", "p50 ms", ".3f"),
    Column("errors", "errors"),
)

SECTION = Section("metrics", "Metrics cost: request observer and gateway, on vs off", COLUMNS, run)
