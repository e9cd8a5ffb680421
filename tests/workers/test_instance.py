"""The instance-wide answers (lasso.workers.instance): merging expositions, and the
/health summary when a sibling is down; the peer socket on a real unix socket."""

from __future__ import annotations

from pathlib import Path

import trio

from lasso.workers.instance import Instance, merge_expositions

WORKER = """\
# HELP lasso_requests_total Calls answered.
# TYPE lasso_requests_total counter
lasso_requests_total{{chain="devnet"}} {n}
# HELP lasso_latency_ms Latency.
# TYPE lasso_latency_ms histogram
lasso_latency_ms_bucket{{le="1.0"}} {n}
lasso_latency_ms_bucket{{le="+Inf"}} {n}
lasso_latency_ms_sum 0.5
lasso_latency_ms_count {n}
"""


def test_every_worker_series_appears_once_per_family_labelled_by_worker() -> None:
    merged = merge_expositions(
        {1: WORKER.format(n=5).encode(), 0: WORKER.format(n=3).encode()}
    ).decode()
    assert merged.count("# TYPE lasso_requests_total counter") == 1
    assert 'lasso_requests_total{chain="devnet",worker="0"} 3.0' in merged
    assert 'lasso_requests_total{chain="devnet",worker="1"} 5.0' in merged
    assert 'lasso_latency_ms_bucket{le="+Inf",worker="1"} 5.0' in merged
    assert merged.count("# TYPE lasso_latency_ms histogram") == 1
    assert merged.index('worker="0"') < merged.index('worker="1"')


async def test_health_names_the_answering_worker_and_a_silent_sibling_as_down(
    tmp_path: Path,
) -> None:
    one = Instance(1, 3, str(tmp_path))  # worker 2 never listens
    one.attach(lambda: {"status": "healthy", "config": {"generation": 4}}, lambda: b"")
    zero = Instance(0, 3, str(tmp_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(one.serve_peers)
        report = await zero.health({"status": "healthy", "config": {"generation": 4}})
        nursery.cancel_scope.cancel()
    workers = report["workers"]
    assert report["status"] == "degraded"  # one of three is down
    assert workers["answered_by"] == {"index": 0, "pid": zero.pid}
    assert workers["up"] == 2
    assert [(m["index"], m["status"], m["config_generation"]) for m in workers["members"]] == [
        (0, "healthy", 4),
        (1, "healthy", 4),
        (2, "down", None),
    ]
