"""The logs stream: dedupe, completeness, backfill and removals, with exact outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from lasso.core.subs import (
    Delivery,
    LogDecision,
    LogFilter,
    LogStream,
    LogStreamStatistics,
    LogVerdict,
    TooFar,
    parse_subscribe_params,
)
from tests.core.subs.chains import ADDRESS_A, ADDRESS_B, TOPIC_X, TOPIC_Y, hash_of, log

A105, B105, A106 = hash_of("a", 105), hash_of("b", 105), hash_of("a", 106)


def keys(items: tuple[Delivery, ...]) -> list[str]:
    """``"a105:0"`` for a log, ``"-a105:0"`` for a removal."""
    out = []
    for d in items:
        p = d.payload
        name = f"{p['blockHash'][2]}{int(p['blockNumber'], 16)}:{int(p['logIndex'], 16)}"
        out.append(("-" if p["removed"] else "") + name)
    return out


def lg(name: str, **extra: Any) -> dict[str, Any]:
    """``lg("a105:1")``: log 1 of block a105."""
    block, _, index = name.partition(":")
    return log(hash_of(block[0], int(block[1:])), int(block[1:]), int(index), **extra)


def summary(d: LogDecision) -> tuple[str, list[str]]:
    return (d.verdict.name, keys(d.deliver))


def stream_with(*names: str, anchor: int = 104) -> LogStream:
    stream = LogStream()
    stream.anchor(anchor)
    for name in names:
        stream.offer(lg(name))
    return stream


# (logs offered first, the live log offered, expected (verdict, deliveries))
LIVE_CASES: dict[str, tuple[str, dict[str, Any], tuple[str, list[str]]]] = {
    "new log": ("", lg("a105:0"), ("DELIVER", ["a105:0"])),
    "duplicate": ("a105:0", lg("a105:0"), ("DUPLICATE", [])),
    "next index": ("a105:0", lg("a105:1"), ("DELIVER", ["a105:1"])),
    "same index, another block at the same height: the old block is removed first": (
        "a105:0 a105:1",
        lg("b105:0"),
        ("REMOVED", ["-a105:0", "-a105:1", "b105:0"]),
    ),
    "upstream removal removes the whole block, in index order": (
        "a105:0 a105:1 a105:2",
        lg("a105:1", removed=True),
        ("REMOVED", ["-a105:0", "-a105:1", "-a105:2"]),
    ),
    "a second upstream removal is a duplicate": (
        "a105:0 a105:1 a105:1/removed",
        lg("a105:0", removed=True),
        ("DUPLICATE", []),
    ),
    "removal of a never delivered log is stale": ("", lg("a105:0", removed=True), ("STALE", [])),
    "a removed block coming back is delivered afresh": (
        "a105:0 a105:1 a105:0/removed",
        lg("a105:1"),
        ("DELIVER", ["a105:1"]),
    ),
    "a late log of an earlier block is still delivered": (
        "a106:0",
        lg("a105:0"),
        ("DELIVER", ["a105:0"]),
    ),
    "malformed": ("", {"blockHash": A105, "logIndex": "0x0"}, ("STALE", [])),
    "pending log without a block": ("", lg("a105:0", blockHash=None), ("STALE", [])),
}


def _prepare(setup: str) -> LogStream:
    stream = LogStream()
    stream.anchor(104)
    for name in setup.split():
        base, _, flag = name.partition("/")
        stream.offer(lg(base, removed=flag == "removed"))
    return stream


@pytest.mark.parametrize("case", LIVE_CASES, ids=list(LIVE_CASES))
def test_live(case: str) -> None:
    setup, offered, expected = LIVE_CASES[case]
    assert summary(_prepare(setup).offer(offered)) == expected


def test_live_bytes_pass_through_and_removals_are_rebuilt() -> None:
    stream = LogStream()
    payload = lg("a105:0")
    d = stream.offer(payload, b"raw-bytes")
    assert d.deliver == (Delivery(payload, b"raw-bytes"),)
    assert d.deliver[0].payload is payload
    (removal,) = stream.orphan([A105])
    assert removal.raw is None
    assert removal.payload == {**payload, "removed": True}
    assert list(removal.payload) == list(payload)  # same key order
    assert payload["removed"] is False  # the original is untouched


def test_orphan_removes_each_block_once_in_block_then_index_order() -> None:
    stream = stream_with("a106:0", "a105:1", "a105:0", "a107:0")
    removed = stream.orphan([A106.upper().replace("0X", "0x"), A105, hash_of("c", 999)])
    assert keys(removed) == ["-a105:0", "-a105:1", "-a106:0"]
    assert stream.orphan([A105, A106]) == ()
    assert stream.offer(lg("a105:0", removed=True)).verdict is LogVerdict.DUPLICATE


def test_orphan_with_a_fork_point_rewinds_completeness() -> None:
    stream = stream_with("a105:0", "a106:0", "a107:0")
    assert stream.last_complete == 106
    stream.orphan([A106], fork_point=106)
    assert stream.last_complete == 105
    assert stream.backfill_range(108) == range(106, 109)
    stream.orphan([hash_of("a", 107)])  # no fork point: the lowest orphaned block with logs
    assert stream.last_complete == 105


def test_upstream_removal_rewinds_completeness() -> None:
    stream = stream_with("a105:0", "a106:0", "a107:0")
    stream.offer(lg("a106:0", removed=True))
    assert stream.last_complete == 105


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("", None),  # nothing anchored, nothing seen: no marker
        ("anchor", 104),
        ("anchor a105:0", 104),  # block 105 may still have more logs
        ("anchor a105:0 a107:0", 106),
        ("anchor a105:0 a108:0 a106:0", 105),  # a106 had logs in flight: reopened
        ("a107:3", 106),  # no anchor: the first live log starts the marker
    ],
)
def test_last_complete(setup: str, expected: int | None) -> None:
    stream = LogStream()
    for item in setup.split():
        if item == "anchor":
            stream.anchor(104)
        else:
            stream.offer(lg(item))
    assert stream.last_complete == expected


@pytest.mark.parametrize(
    ("provider_head", "max_backfill", "expected"),
    [
        (104, None, range(105, 105)),
        (100, None, range(105, 105)),
        (105, None, range(105, 106)),
        (232, None, range(105, 233)),  # exactly 128
        (233, None, TooFar(105, 233, 128)),
        (114, 10, range(105, 115)),
        (115, 10, TooFar(105, 115, 10)),
    ],
)
def test_backfill_range(provider_head: int, max_backfill: int | None, expected: object) -> None:
    stream = LogStream()
    assert stream.backfill_range(provider_head) == range(0)
    stream.anchor(104)
    assert stream.backfill_range(provider_head, max_backfill) == expected


def test_failover_rereads_blocks_a_silent_reorg_of_log_less_blocks_replaced() -> None:
    # Hypothesis found it: a105 has a log; a failover backfill completes a106 and a107,
    # which have none. A reorg replaces them with b106 (the chain gets shorter): no log
    # was orphaned, so upstream sends no removal and nothing tells the stream. The chain
    # grows b107, with a log, while the next failover is under way.
    stream = stream_with("a105:0")
    assert stream.accept_backfill(range(106, 108), []).verdict is LogVerdict.DUPLICATE
    assert stream.last_complete == 107
    missing = stream.backfill_range(107)  # 106 and 107 are complete by number only
    assert missing == range(106, 108)
    assert summary(stream.accept_backfill(missing, [lg("b107:0")])) == ("DELIVER", ["b107:0"])


@pytest.mark.parametrize(
    "before",
    [
        "a106 to a108 completed without logs",
        "a108's log removed upstream (a106 and a107, without logs, were replaced too)",
    ],
)
def test_a_new_live_log_at_or_below_last_complete_reopens_its_block(before: str) -> None:
    # Hypothesis found it: a reorg replaces blocks counted complete by number; the new
    # branch's live logs arrive below last_complete, then the connection dies after the
    # first log of b108. The failover must re-read b108, not trust the old branch's count.
    stream = stream_with("a105:0")
    if before.startswith("a108's"):
        stream.accept_backfill(range(106, 110), [lg("a108:0")])
        stream.offer(lg("a108:0", removed=True))
    else:
        stream.accept_backfill(range(106, 109), [])
    assert stream.last_complete in (107, 108)
    assert summary(stream.offer(lg("b107:0"))) == ("DELIVER", ["b107:0"])
    assert stream.last_complete == 106
    assert summary(stream.offer(lg("b108:0"))) == ("DELIVER", ["b108:0"])
    assert stream.last_complete == 107  # b108 may have more logs
    missing = stream.backfill_range(108)
    assert missing == range(108, 109)
    answer = [lg("b107:0"), lg("b108:0"), lg("b108:1"), lg("b108:2")]
    assert summary(stream.accept_backfill(missing, answer)) == ("DELIVER", ["b108:1", "b108:2"])


@pytest.mark.parametrize(
    ("setup", "provider_head", "expected"),
    [
        ("a105:0 a106:0", 106, range(106, 107)),  # a106 may be half delivered: as before
        ("a105:0 a106:0 backfill:107-108", 110, range(107, 111)),
        ("a105:0 a106:0 backfill:107-108", 107, range(107, 108)),  # a provider behind
        ("a105:0 a106:0 backfill:107-108 orphan:a106", 110, range(106, 111)),
        ("backfill:105-108", 110, range(105, 111)),  # nothing delivered: from the anchor
        ("a105:0 advance:300", 310, range(183, 311)),  # a quiet filter: max_backfill blocks
        ("a105:0 advance:300", 428, range(301, 429)),  # nothing left to re-read
        ("a105:0 advance:300", 429, TooFar(301, 429, 128)),  # only missing blocks count
    ],
)
def test_backfill_range_rereads_blocks_known_by_number_only(
    setup: str, provider_head: int, expected: object
) -> None:
    stream = stream_with()
    for step in setup.split():
        action, _, arg = step.partition(":")
        if action == "backfill":
            first, _, last = arg.partition("-")
            stream.accept_backfill(range(int(first), int(last) + 1), [])
        elif action == "advance":
            stream.advance(int(arg))
        elif action == "orphan":
            stream.orphan([hash_of(arg[0], int(arg[1:]))])
        else:
            stream.offer(lg(step))
    assert stream.backfill_range(provider_head) == expected


def test_backfill_is_sorted_deduped_filtered_and_completes_its_range() -> None:
    filt = LogFilter(addresses=(ADDRESS_A,))
    stream = LogStream(filt)
    stream.anchor(104)
    stream.offer(lg("a105:0"))
    answer = [
        lg("a107:1"),
        lg("a105:1"),
        lg("a105:0"),  # already delivered live
        lg("a106:0", address=ADDRESS_B),  # does not match the filter
        lg("a106:1", removed=True),  # a removal has no place in a getLogs answer
        lg("a109:0"),  # outside the range asked for
        {"blockHash": A106},  # malformed
        lg("a107:0"),
    ]
    d = stream.accept_backfill(range(105, 109), answer)
    assert summary(d) == ("DELIVER", ["a105:1", "a107:0", "a107:1"])
    assert stream.last_complete == 108
    assert summary(stream.accept_backfill(range(105, 109), answer)) == ("DUPLICATE", [])


def test_backfill_removes_delivered_blocks_it_does_not_contain() -> None:
    stream = stream_with("a105:0", "a105:1", "a106:0")
    d = stream.accept_backfill(range(105, 107), [lg("b105:0"), lg("a106:0")])
    assert summary(d) == ("REMOVED", ["-a105:0", "-a105:1", "b105:0"])
    d = stream.accept_backfill(range(106, 108), [lg("c107:0")])  # a106 gone, no rival
    assert summary(d) == ("REMOVED", ["-a106:0", "c107:0"])


def test_backfill_outside_the_range_removes_nothing() -> None:
    stream = stream_with("a105:0", "a106:0")
    assert summary(stream.accept_backfill(range(106, 107), [lg("a106:0")])) == ("DUPLICATE", [])
    assert summary(stream.accept_backfill(range(0), [])) == ("DUPLICATE", [])
    assert stream.last_complete == 106


def test_filter_mismatch_and_reasons() -> None:
    request = parse_subscribe_params(["logs", {"address": ADDRESS_A, "topics": [TOPIC_X]}])
    stream = LogStream(request.log_filter)
    assert stream.offer(lg("a105:0", topics=[TOPIC_Y])).reason == (
        "the log does not match the subscription's filter"
    )
    assert stream.offer({"blockNumber": "0x1"}).reason == (
        "malformed log: it needs blockHash, blockNumber and logIndex"
    )
    assert stream.offer(lg("a105:0")).verdict is LogVerdict.DELIVER
    assert stream.offer(lg("a105:0")).reason == "already delivered"


def test_window_forgets_old_blocks_and_drops_their_logs_as_stale() -> None:
    stream = LogStream(window=4)
    stream.anchor(99)
    for name in ("a100:0", "a101:0", "a104:0", "a105:0"):
        stream.offer(lg(name))
    assert stream.statistics().blocks == 2  # 105 - 4: blocks up to 101 are forgotten
    d = stream.offer(lg("a101:0"))
    assert (d.verdict, d.reason) == (LogVerdict.STALE, "older than window")
    assert stream.offer(lg("a102:0")).verdict is LogVerdict.DELIVER
    stream.offer(lg("a400:0"))  # a jump far ahead forgets everything before it
    assert stream.statistics().blocks == 1


def test_delivered_between_and_cached_range() -> None:
    stream = stream_with("a106:1", "a105:0", "a106:0", "a107:0")
    stream.orphan([hash_of("a", 107)])
    assert keys(stream.delivered_between(range(105, 108))) == ["a105:0", "a106:0", "a106:1"]
    assert stream.cached_range == range(105, 107)  # a107 orphaned: complete up to 106
    assert LogStream().cached_range == range(0)


def test_statistics() -> None:
    stream = stream_with("a105:0", "a105:1", "a105:1", "a106:0")
    stream.offer(lg("a106:0", removed=True))
    stream.offer({"nope": 1})
    assert stream.statistics() == LogStreamStatistics(
        last_complete=105, blocks=2, delivered=3, removed=1, duplicates=1, stale=1
    )
