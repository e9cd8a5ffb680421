"""Section ``cache``: the response cache's hit path against a miss and against the floors.

Four targets, each its own process, loaded by ``bench/load.py`` (its own process) with
the same ``eth_blockNumber`` body at every concurrency, in one run so the ratios compare
like with like:

    direct    load straight at the instant upstream: the harness's floor
    echo      a bare hypercorn-trio ASGI app answering a fixed result
              (``bench/hypercorn_echo.py``): the floor of Lasso's own front-end stack
    miss      the gateway forwarding every call (the default ``[cache]``: a
              ``latest`` answer is not kept), i.e. a miss's path: lookup, then upstream
    hit       the gateway with ``[cache] methods = { eth_blockNumber = "3600000ms" }``:
              every call after the first is answered from the cache, no upstream call
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bench.forwarding import COLUMNS, _ms, run_targets
from bench.procs import Child, launched, python_module
from bench.report import Derived, Options, Row, Section, SectionResult, ratio

TARGETS = ("direct", "echo", "miss", "hit")


@contextlib.contextmanager
def _target(name: str, upstream: Child) -> Iterator[tuple[Child, str]]:
    url = f"http://127.0.0.1:{upstream.port}/"
    if name == "direct":
        yield upstream, "/"
    elif name == "echo":
        with launched(name, python_module("bench.hypercorn_echo")) as child:
            yield child, "/"
    elif name == "miss":
        with launched(name, python_module("bench.gateway_target", url)) as child:
            yield child, "/rpc/bench"
    else:
        with launched(name, python_module("bench.gateway_target", url, "cachehit")) as child:
            yield child, "/rpc/bench"


def _derived(rows: list[Row], concurrencies: tuple[int, ...]) -> list[Derived]:
    cell = {(r["target"], r["concurrency"]): r for r in rows}
    out = []
    for c in concurrencies:
        hit, miss = cell[("hit", c)], cell[("miss", c)]
        echo, direct = cell[("echo", c)], cell[("direct", c)]
        out += [
            Derived(f"c={c:<2} hit req/s / miss req/s", ratio(hit["rps"], miss["rps"]), "x"),
            Derived(f"c={c:<2} hit req/s / echo req/s", ratio(hit["rps"], echo["rps"]), "x"),
            Derived(
                f"c={c:<2} miss CPU/req / hit CPU/req", ratio(miss["cpu_us"], hit["cpu_us"]), "x"
            ),
            _ms(f"c={c:<2} hit latency p50 added over direct", hit, direct, "p50_ms"),
            _ms(f"c={c:<2} hit latency p50 added over echo", hit, echo, "p50_ms"),
            _ms(f"c={c:<2} miss latency p50 added over direct", miss, direct, "p50_ms"),
        ]
    return out


def run(opts: Options) -> SectionResult:
    return run_targets(TARGETS, _target, _derived, NOTES, opts)


NOTES = [
    "same machine, same run: compare within the run; CPU µs/req is the machine-independent "
    "figure (see the http section's notes)",
    "hit = Lasso's whole request path (front end, parse, gate, metrics, the cache lookup, the "
    "id spliced into the stored bytes) with no upstream call; echo = hypercorn-trio alone",
]


SECTION = Section("cache", "Response cache: hit path vs miss vs the floors", COLUMNS, run)
