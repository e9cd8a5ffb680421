"""The soak's verdicts from a record of what happened, and the subscribers' head checks."""

from __future__ import annotations

import copy
import os
import socket
from typing import Any

from bench.obscost import cost_pct
from bench.soak import fd_kinds, judge
from bench.soak_subs import Watch

PHASE = {
    "errors": 0,
    "answered": 1000,
    "rps": 100.0,
    "p50_ms": 2.0,
    "p99_ms": 20.0,
    "error_kinds": {},
    "error_examples": [],
}
QUIET = {
    "rss_kib": 100_000,
    "tasks": 300,
    "tasks_samples": [300] * 5,
    "fds": 60,
    "fds_samples": [60] * 5,
    "fd_kinds": {},
}
SUB = {"first": 11, "last": 200, "heads": 190, "errors": {}, "examples": []}
RECORD: dict[str, Any] = {
    "peak": PHASE,
    "warmup": PHASE,
    "soak": PHASE,
    "baseline": QUIET,
    "end": QUIET,
    "head_at_subscribe": 10,
    "head_at_end": 200,
    "subs": [SUB, SUB],
    "rss_trace_kib": [100_000, 101_000],
    "chain": {"cuts": 6, "outages": 0},
    "log_bytes": 1,
}


def _verdicts(record: dict[str, Any]) -> dict[str, str]:
    return {row["criterion"]: row["verdict"] for row in judge(record).rows if row["verdict"]}


def test_a_clean_soak_meets_every_criterion() -> None:
    result = judge(RECORD)
    assert set(_verdicts(RECORD).values()) == {"met"}
    assert result.verdicts[0].met is True


def test_each_breach_fails_its_own_criterion() -> None:
    cases = [
        ("end", {**QUIET, "rss_kib": 110_000}, "RSS growth, warm-up to end"),
        ("end", {**QUIET, "tasks": 301}, "leaked trio tasks"),
        ("end", {**QUIET, "fds": 61}, "leaked fds"),
        ("soak", {**PHASE, "errors": 1}, "HTTP client errors"),
    ]
    for key, value, criterion in cases:
        record = copy.deepcopy(RECORD)
        record[key] = value
        verdicts = _verdicts(record)
        assert verdicts[criterion] == "NOT met", criterion
        assert judge(record).verdicts[0].met is False


def test_a_subscriber_that_missed_the_last_heads_fails() -> None:
    record = copy.deepcopy(RECORD)
    record["subs"][1] = {**SUB, "last": 150}
    assert _verdicts(record)["subscribers with every head"] == "NOT met"
    record["subs"][1] = {**SUB, "errors": {"gap": 1}}
    assert _verdicts(record)["subscriber errors"] == "NOT met"


def test_the_watch_names_gaps_duplicates_and_forks() -> None:
    watch = Watch()
    watch.head(5, "0x5", "0x4")
    watch.head(6, "0x6", "0x5")
    watch.head(6, "0x6", "0x5")  # duplicate
    watch.head(8, "0x8", "0x7")  # gap
    watch.head(9, "0x9", "0xother")  # a parent that is not the previous head
    assert dict(watch.errors) == {"duplicate": 1, "gap": 1, "parent": 1}
    assert (watch.first, watch.last, watch.heads) == (5, 9, 5)


def test_cost_is_the_share_of_the_on_cpu() -> None:
    assert cost_pct(1000.0, 950.0) == 5.0
    assert cost_pct(None, 950.0) is None


def test_descriptors_are_told_apart_by_kind() -> None:
    front = socket.create_server(("127.0.0.1", 0))
    upstream = socket.create_server(("127.0.0.1", 0))
    front_port, upstream_port = front.getsockname()[1], upstream.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", front_port))
    served, _ = front.accept()
    outgoing = socket.create_connection(("127.0.0.1", upstream_port))
    accepted, _ = upstream.accept()
    try:
        kinds = fd_kinds(os.getpid(), front_port, {upstream_port})
        # served: local port = the front's; outgoing: remote port = the upstream's; client
        # and accepted are the other ends (other sockets, as far as the "gateway" knows).
        assert kinds["listen"] >= 2
        assert kinds["client tcp"] >= 1
        assert kinds["upstream tcp"] == 1
        assert kinds["other socket"] >= 2
    finally:
        for s in (front, upstream, client, served, outgoing, accepted):
            s.close()
