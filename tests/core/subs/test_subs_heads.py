"""The newHeads stream: every decision type, table-driven, with exact outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from lasso.core.subs import (
    Delivery,
    HeadDecision,
    HeadStream,
    HeadStreamError,
    HeadStreamStatistics,
    HeadVerdict,
    StreamState,
    TooFar,
)
from tests.core.subs.chains import head, heads, name_of

Summary = tuple[str, str, range | None, str, int | None]


def name_of_hash(h: str) -> str:
    return f"{h[2]}{int(h[3:], 16)}"


def summary(d: HeadDecision) -> Summary:
    delivered = " ".join(name_of(x.payload) for x in d.deliver)
    orphaned = " ".join(name_of_hash(h) for h in d.orphaned)
    return (d.verdict.name, delivered, d.fetch, orphaned, d.fork_point)


def step(stream: HeadStream, kind: str, specs: str) -> HeadDecision:
    if kind == "live":
        return stream.offer(head(specs))
    assert kind == "fill"
    return stream.offer_backfill(heads(specs))


def run(stream: HeadStream, steps: list[tuple[str, str]]) -> list[Summary]:
    return [summary(step(stream, kind, specs)) for kind, specs in steps]


# Each case: (setup steps whose outcomes are not checked, [(kind, specs, expected), ...]).
CASES: dict[str, tuple[str, list[tuple[str, str, Summary]]]] = {
    "first head anchors": ("", [("live", "a100", ("DELIVER", "a100", None, "", None))]),
    "next head": ("a100", [("live", "a101", ("DELIVER", "a101", None, "", None))]),
    "duplicate of the tip": ("a100 a101", [("live", "a101", ("DUPLICATE", "", None, "", None))]),
    "duplicate deeper in the window": (
        "a100 a101 a102",
        [("live", "a100", ("DUPLICATE", "", None, "", None))],
    ),
    "gap is held, then filled in order": (
        "a100",
        [
            ("live", "a103", ("GAP", "", range(101, 103), "", None)),
            ("fill", "a101 a102", ("DELIVER", "a101 a102 a103", None, "", None)),
        ],
    ),
    "gap filled out of order": (
        "a100",
        [
            ("live", "a103", ("GAP", "", range(101, 103), "", None)),
            ("fill", "a102 a101", ("DELIVER", "a101 a102 a103", None, "", None)),
        ],
    ),
    "partial fill asks again": (
        "a100",
        [
            ("live", "a104", ("GAP", "", range(101, 104), "", None)),
            ("fill", "a101", ("GAP", "", range(101, 104), "", None)),
            ("fill", "a102 a103", ("DELIVER", "a101 a102 a103 a104", None, "", None)),
        ],
    ),
    "live heads during a fill are held too": (
        "a100",
        [
            ("live", "a103", ("GAP", "", range(101, 103), "", None)),
            ("live", "a104", ("GAP", "", range(101, 103), "", None)),
            ("live", "a103", ("DUPLICATE", "", range(101, 103), "", None)),
            ("fill", "a101 a102", ("DELIVER", "a101 a102 a103 a104", None, "", None)),
        ],
    ),
    "same-height reorg": (
        "a100 a101",
        [("live", "b101/a", ("REORG", "b101", None, "a101", 101))],
    ),
    "a shorter branch waits until it reaches the delivered head": (
        "a100 a101 a102 a103 a104",
        [
            ("live", "b102/a", ("STALE", "", None, "", None)),
            ("live", "b103", ("STALE", "", None, "", None)),
            ("live", "b104", ("REORG", "b102 b103 b104", None, "a102 a103 a104", 102)),
            ("live", "b105", ("DELIVER", "b105", None, "", None)),
        ],
    ),
    "a far-behind provider's heads are never delivered": (
        "a100 a101 a102 a103 a104 a105 a106",
        [
            ("live", "c101/a", ("STALE", "", None, "", None)),
            ("live", "c102", ("STALE", "", None, "", None)),
            ("fill", "c103", ("STALE", "", None, "", None)),
            ("live", "a107", ("DELIVER", "a107", None, "", None)),
        ],
    ),
    "reorg with an unknown parent fetches below": (
        "a100 a101 a102 a103",
        [
            ("live", "b104", ("REORG", "", range(100, 104), "", None)),
            ("fill", "a100 a101 b102/a b103", ("REORG", "b102 b103 b104", None, "a102 a103", 102)),
        ],
    ),
    "reorg probe steps down four at a time": (
        "a100 a101 a102 a103 a104 a105 a106 a107 a108 a109",
        [
            ("live", "b110", ("REORG", "", range(106, 110), "", None)),
            ("fill", "b106 b107 b108 b109", ("REORG", "", range(102, 106), "", None)),
            (
                "fill",
                "a102 a103 b104/a b105",
                (
                    "REORG",
                    "b104 b105 b106 b107 b108 b109 b110",
                    None,
                    "a104 a105 a106 a107 a108 a109",
                    104,
                ),
            ),
        ],
    ),
    "stale live head while filling keeps the fetch": (
        "a100 a101 b101/a",
        [
            ("live", "b104", ("GAP", "", range(102, 104), "", None)),
            ("live", "a101", ("STALE", "", range(102, 104), "", None)),
        ],
    ),
    "echo of an orphaned head is stale": (
        "a100 a101 b101/a",
        [("live", "a101", ("STALE", "", None, "", None))],
    ),
    "a head on the orphaned branch reorgs back (via a fetch)": (
        "a100 a101 b101/a",
        [
            ("live", "a102", ("REORG", "", range(100, 102), "", None)),
            ("fill", "a100 a101", ("REORG", "a101 a102", None, "b101", 101)),
        ],
    ),
    "young window: the first head itself is replaced": (
        "a100",
        [("live", "b100/f", ("REORG", "b100", None, "a100", 100))],
    ),
    "young window: older than the first head is stale": (
        "a100 a101",
        [("live", "a99", ("STALE", "", None, "", None))],
    ),
    "held branch not on the provider's chain is dropped": (
        "a100 a101",
        [
            ("live", "c103/c", ("GAP", "", range(102, 103), "", None)),
            ("fill", "a102", ("DELIVER", "a102", None, "", None)),
        ],
    ),
    "a fill without the missing block asks again": (
        "a100 a101",
        [
            ("live", "c103/c", ("GAP", "", range(102, 103), "", None)),
            ("fill", "a101", ("GAP", "", range(102, 103), "", None)),
        ],
    ),
    "empty stream takes a backfill batch as its start": (
        "",
        [("fill", "a100 a101 a102", ("DELIVER", "a100 a101 a102", None, "", None))],
    ),
    "empty backfill changes nothing": ("a100", [("fill", "", ("STALE", "", None, "", None))]),
    "failover backfill reveals a reorg": (
        "a100 a101 a102 a103",
        [
            ("fill", "b104/b", ("REORG", "", range(100, 104), "", None)),
            ("fill", "a100 a101 a102 b103/a", ("REORG", "b103 b104", None, "a103", 103)),
        ],
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_decisions(case: str) -> None:
    setup, steps = CASES[case]
    stream = HeadStream()
    for spec in setup.split():
        stream.offer(head(spec))
    assert run(stream, [(k, s) for k, s, _ in steps]) == [e for _, _, e in steps]


def test_gap_over_the_backfill_limit_is_too_far_then_reset_restarts() -> None:
    stream = HeadStream(max_backfill=5)
    stream.offer(head("a100"))
    assert summary(stream.offer(head("a106"))) == ("GAP", "", range(101, 106), "", None)
    stream.reset()
    stream.offer(head("a100"))
    d = stream.offer(head("a107"))
    assert d.verdict is HeadVerdict.TOO_FAR
    assert d.too_far == TooFar(101, 106, 5)
    assert d.reason == d.too_far.message
    assert d.reason == (
        "the subscription missed blocks 0x65..0x6a (6 blocks), more than the 5-block "
        "backfill limit; the stream cannot continue without a gap"
    )
    assert (stream.state, stream.tip, stream.statistics().held) == (StreamState.LIVE, 100, 0)
    stream.reset()
    assert stream.state is StreamState.EMPTY
    assert summary(stream.offer(head("a107"))) == ("DELIVER", "a107", None, "", None)


def test_trimmed_window_drops_older_heads_and_gives_up_on_deeper_reorgs() -> None:
    stream = HeadStream(window=4)
    for spec in ["a100", "a101", "a102", "a103", "a104", "a105"]:
        stream.offer(head(spec))
    assert stream.cached_range == range(102, 106)
    assert summary(stream.offer(head("a102"))) == ("DUPLICATE", "", None, "", None)
    d = stream.offer(head("c102/c"))  # the oldest can no longer be replaced
    assert (d.verdict, d.reason) == (HeadVerdict.STALE, "the head is older than the 4-block window")
    assert stream.offer(head("a101")).verdict is HeadVerdict.STALE
    assert summary(stream.offer(head("b106"))) == ("REORG", "", range(103, 106), "", None)
    d = stream.offer_backfill(heads("b103/b b104 b105"))
    assert d.verdict is HeadVerdict.TOO_FAR
    assert d.too_far == TooFar(102, 105, 4, reorg=True)
    assert d.reason == (
        "a reorg replaced delivered blocks at or below 0x66, deeper than the 4-block "
        "window; the stream cannot be repaired"
    )
    assert (stream.state, stream.tip) == (StreamState.LIVE, 105)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"number": "0x1", "hash": "0xab"}, "malformed head: it needs number, hash and parentHash"),
        (
            {"number": "12", "hash": "0xab", "parentHash": "0xcd"},
            "malformed head: it needs number, hash and parentHash",
        ),
        (
            {"number": "0x1", "hash": 5, "parentHash": "0xcd"},
            "malformed head: it needs number, hash and parentHash",
        ),
    ],
)
def test_malformed_heads_are_stale(payload: dict[str, Any], reason: str) -> None:
    stream = HeadStream()
    d = stream.offer(payload)
    assert (d.verdict, d.reason, stream.state) == (HeadVerdict.STALE, reason, StreamState.EMPTY)
    assert stream.offer_backfill([payload]).reason == reason


def test_stale_reasons() -> None:
    stream = HeadStream()
    for spec in ["a100", "a101", "b101/a"]:
        stream.offer(head(spec))
    assert stream.offer(head("a101")).reason == "the head was orphaned by a reorg"
    assert stream.offer(head("a99")).reason == "the head is older than the 256-block window"
    stream.offer(head("c103/c"))
    assert (
        stream.offer_backfill(heads("b102")).reason == "held heads are not on the provider's chain"
    )


@pytest.mark.parametrize(
    ("provider_head", "max_backfill", "expected"),
    [
        (100, None, range(101, 101)),
        (98, None, range(101, 101)),
        (101, None, range(101, 102)),
        (110, None, range(101, 111)),
        (228, None, range(101, 229)),  # exactly 128 blocks
        (229, None, TooFar(101, 229, 128)),
        (110, 10, range(101, 111)),
        (111, 10, TooFar(101, 111, 10)),
    ],
)
def test_backfill_range(provider_head: int, max_backfill: int | None, expected: object) -> None:
    stream = HeadStream()
    assert stream.backfill_range(provider_head) == range(0)  # nothing delivered: nothing to fill
    stream.offer(head("a100"))
    assert stream.backfill_range(provider_head, max_backfill) == expected


def test_live_bytes_pass_through_and_backfill_is_shaped_like_live() -> None:
    stream = HeadStream()
    live = {
        "hash": head("a100")["hash"],
        "parentHash": head("a100")["parentHash"],
        "number": "0x64",
        "transactions": [],
    }
    d = stream.offer(live, b'{"raw":1}')
    assert d.deliver == (Delivery(live, b'{"raw":1}'),)
    assert d.deliver[0].payload is live  # not copied
    block = {
        **head("a101"),
        "size": "0x220",
        "uncles": [],
        "transactions": [{"hash": "0x" + "77" * 32, "nonce": "0x0"}],
    }
    d = stream.offer_backfill([block])
    assert d.deliver == (
        Delivery(
            {
                "hash": block["hash"],
                "parentHash": block["parentHash"],
                "number": "0x65",
                "transactions": ["0x" + "77" * 32],
            }
        ),
    )
    assert list(d.deliver[0].payload) == ["hash", "parentHash", "number", "transactions"]


def test_hashes_compare_case_insensitively() -> None:
    stream = HeadStream()
    stream.offer(head("a100"))
    upper = {k: v.upper().replace("0X", "0x") for k, v in head("a101").items()}
    assert stream.offer(upper).verdict is HeadVerdict.DELIVER
    assert stream.offer(head("a101")).verdict is HeadVerdict.DUPLICATE


def test_anchor_starts_an_empty_stream_without_delivering() -> None:
    stream = HeadStream()
    stream.anchor(heads("a99 a100 a101 a102"))
    assert (stream.state, stream.tip, stream.cached_range) == (
        StreamState.LIVE,
        102,
        range(99, 103),
    )
    assert summary(stream.offer(head("a101"))) == ("DUPLICATE", "", None, "", None)
    assert summary(stream.offer(head("b102/a"))) == ("REORG", "b102", None, "a102", 102)
    with pytest.raises(HeadStreamError, match="anchor\\(\\) needs an empty stream, not live"):
        stream.anchor(heads("a103"))


def test_anchor_keeps_the_linked_run_below_the_highest_block() -> None:
    stream = HeadStream()
    stream.anchor(heads("a97 b99/b a100 a101"))  # a99 missing: the run is a100..a101
    assert stream.cached_range == range(100, 102)
    assert [name_of(d.payload) for d in stream.delivered_between(range(90, 110))] == [
        "a100",
        "a101",
    ]


def test_anchor_with_nothing_stays_empty() -> None:
    stream = HeadStream()
    stream.anchor([])
    assert stream.state is StreamState.EMPTY


def test_statistics() -> None:
    stream = HeadStream()
    assert stream.statistics() == HeadStreamStatistics(
        state=StreamState.EMPTY,
        tip=None,
        oldest=None,
        held=0,
        delivered=0,
        duplicates=0,
        stale=0,
        gaps=0,
        reorgs=0,
        orphaned=0,
        too_far=0,
    )
    for kind, specs in [
        ("live", "a100"),
        ("live", "a100"),
        ("live", "a103"),
        ("fill", "a101 a102"),
        ("live", "b103/a"),
        ("live", "a103"),
        ("live", "c106/c"),
    ]:
        step(stream, kind, specs)
    assert stream.statistics() == HeadStreamStatistics(
        state=StreamState.FILLING,
        tip=103,
        oldest=100,
        held=1,
        delivered=5,
        duplicates=1,
        stale=1,
        gaps=2,
        reorgs=1,
        orphaned=1,
        too_far=0,
    )


def test_invalid_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="window must be at least 2"):
        HeadStream(window=1)
    with pytest.raises(ValueError, match="max_backfill at least 1"):
        HeadStream(max_backfill=0)


def test_fetches_that_bring_nothing_give_up_after_three() -> None:
    stream = HeadStream()
    stream.offer(head("a100"))
    assert stream.offer(head("a103")).fetch == range(101, 103)
    gap = ("GAP", "", range(101, 103), "", None)
    assert summary(stream.offer_backfill([])) == gap  # 1 fruitless
    assert summary(stream.offer_backfill(heads("a101"))) == gap  # progress: count again
    assert summary(stream.offer_backfill(heads("a101"))) == gap  # 1 (already held)
    assert summary(stream.offer_backfill([])) == gap  # 2
    d = stream.offer_backfill([])  # 3: give up
    assert summary(d) == ("STALE", "", None, "", None)
    assert d.reason == "the provider did not supply blocks 0x65..0x66"
    assert (stream.state, stream.statistics().held) == (StreamState.LIVE, 0)
    assert stream.offer(head("a104")).fetch == range(101, 104)  # nothing was lost


def test_too_many_held_heads_are_dropped() -> None:
    stream = HeadStream(window=2, max_backfill=2)  # at most 4 held
    stream.offer(head("a100"))
    for spec in ("a103", "c102/c", "d102/d", "e102/e"):
        assert stream.offer(head(spec)).verdict in (HeadVerdict.GAP, HeadVerdict.REORG)
    d = stream.offer(head("f102/f"))
    assert (d.verdict, d.reason) == (HeadVerdict.STALE, "too many heads held; they were dropped")
    assert (stream.state, stream.statistics().held) == (StreamState.LIVE, 0)
