"""lasso_resume_from: bounded plans, replays from memory and from a provider, the seam."""

from __future__ import annotations

import pytest

from lasso.core.subs import (
    Delivery,
    HeadStream,
    HeadVerdict,
    LogStream,
    ResumePlan,
    ResumeRejected,
    ResumeSeam,
    StreamState,
    SubscriptionKind,
    plan_resume,
)
from tests.core.subs.chains import hash_of, head, heads, log, name_of

R = range


@pytest.mark.parametrize(
    ("resume_from", "head_", "cached", "expected"),
    [
        (100, 110, R(0), ResumePlan(100, R(100, 111), R(111, 111))),  # nothing cached
        (100, 110, R(90, 111), ResumePlan(100, R(100, 100), R(100, 111))),  # all from memory
        (100, 110, R(105, 111), ResumePlan(100, R(100, 105), R(105, 111))),  # split
        (100, 110, R(100, 108), ResumePlan(100, R(100, 111), R(111, 111))),  # cache short of head
        (110, 110, R(90, 111), ResumePlan(110, R(110, 110), R(110, 111))),
        (111, 110, R(90, 111), ResumePlan(111, R(111, 111), R(111, 111))),  # at the tip
        (150, 110, R(90, 111), ResumePlan(150, R(111, 111), R(111, 111))),  # ahead: nothing
        (127, 254, R(0), ResumePlan(127, R(127, 255), R(255, 255))),  # exactly 128 blocks
    ],
)
def test_plans(resume_from: int, head_: int, cached: range, expected: ResumePlan) -> None:
    assert plan_resume(resume_from, head=head_, cached=cached) == expected


def test_too_far_back_is_rejected_with_a_clear_message() -> None:
    assert plan_resume(126, head=254) == ResumeRejected(
        "lasso_resume_from 0x7e is 129 blocks behind the head 0xfe; at most 128 blocks "
        "can be replayed (the oldest allowed is 0x7f)"
    )
    assert isinstance(plan_resume(100, head=110, max_replay=10), ResumeRejected)
    assert isinstance(plan_resume(101, head=110, max_replay=10), ResumePlan)


def test_plan_blocks() -> None:
    assert ResumePlan(100, R(100, 105), R(105, 111)).blocks == R(100, 111)
    assert ResumePlan(100, R(100, 100), R(100, 111)).blocks == R(100, 111)
    assert ResumePlan(150, R(111, 111), R(111, 111)).blocks == R(111, 111)


def make_plan(resume_from: int, *, head: int, cached: range) -> ResumePlan:
    planned = plan_resume(resume_from, head=head, cached=cached)
    assert isinstance(planned, ResumePlan), planned
    return planned


def names(items: list[Delivery] | ResumeRejected) -> str:
    assert not isinstance(items, ResumeRejected), items
    return " ".join(name_of(d.payload) for d in items)


def live_stream(specs: str) -> HeadStream:
    stream = HeadStream()
    for spec in specs.split():
        stream.offer(head(spec))
    return stream


def test_head_replay_from_memory_is_what_live_clients_got() -> None:
    stream = live_stream("a100 a101 a102 b102/a b103")
    plan = make_plan(101, head=103, cached=stream.cached_range)
    assert plan == ResumePlan(101, R(101, 101), R(101, 104))
    replay = stream.replay(plan, [])
    assert names(replay) == "a101 b102 b103"
    assert not isinstance(replay, ResumeRejected)
    assert replay[1] is stream.delivered_between(R(102, 103))[0]


def test_head_replay_fetches_what_memory_lacks_and_checks_the_seam() -> None:
    stream = live_stream("a103 a104")
    plan = make_plan(100, head=104, cached=stream.cached_range)
    assert plan == ResumePlan(100, R(100, 103), R(103, 105))
    assert names(stream.replay(plan, heads("a102 a100 a101"))) == "a100 a101 a102 a103 a104"
    assert stream.replay(plan, heads("a100 a101")) == ResumeRejected(
        "the provider could not supply every block to replay"
    )
    assert stream.replay(plan, heads("a100 a101 b102/a")) == ResumeRejected(
        "the chain reorganised during the replay; resubscribe"
    )


def test_head_replay_on_an_empty_stream_anchors_it() -> None:
    stream = HeadStream()
    plan = make_plan(100, head=102, cached=stream.cached_range)
    assert names(stream.replay(plan, heads("a100 a101 a102"))) == "a100 a101 a102"
    assert (stream.state, stream.tip) == (StreamState.LIVE, 102)
    assert stream.offer(head("a102")).verdict is HeadVerdict.DUPLICATE  # the seam
    assert stream.offer(head("a104")).fetch == R(103, 104)  # a gap after the replay
    assert names(list(stream.offer_backfill(heads("a103")).deliver)) == "a103 a104"


def test_head_replay_when_live_started_meanwhile() -> None:
    stream = HeadStream()
    plan = make_plan(100, head=102, cached=stream.cached_range)
    stream.offer(head("a103"))  # the live stream started while the replay was fetched
    assert names(stream.replay(plan, heads("a100 a101 a102"))) == "a100 a101 a102"
    stream2 = HeadStream()
    stream2.offer(head("a105"))
    assert stream2.replay(plan, heads("a100 a101 a102")) == ResumeRejected(
        "the live stream started past the replay; resubscribe"
    )


def test_head_replay_when_the_window_moved_on() -> None:
    stream = HeadStream(window=3)
    for spec in ["a100", "a101", "a102"]:
        stream.offer(head(spec))
    plan = make_plan(100, head=102, cached=stream.cached_range)
    stream.offer(head("a103"))
    assert stream.replay(plan, []) == ResumeRejected(
        "the replay window moved on; resubscribe to retry"
    )


def test_seam_for_heads() -> None:
    stream = live_stream("a100 a101 a102")
    seam = ResumeSeam(SubscriptionKind.NEW_HEADS, 101)
    replay = stream.replay(make_plan(101, head=102, cached=stream.cached_range), [])
    assert not isinstance(replay, ResumeRejected)
    assert names(seam.replay([*replay, *replay])) == "a101 a102"  # each once
    held = [stream.offer(head(s)).deliver for s in ("a102", "b102/a", "b103")]
    admitted = [d for batch in held for d in batch if seam.admit(d)]
    assert names(admitted) == "b102 b103"
    assert seam.joined


def test_seam_skips_what_a_client_ahead_of_the_head_has() -> None:
    seam = ResumeSeam(SubscriptionKind.NEW_HEADS, 105)
    assert seam.replay([]) == []
    assert [seam.admit(Delivery(head(s))) for s in ("a103", "a104", "a105", "a104")] == [
        False,
        False,
        True,
        True,  # once the client is being served, a lower head is a reorg: sent
    ]


def test_seam_joined_only_past_the_replay() -> None:
    seam = ResumeSeam(SubscriptionKind.NEW_HEADS, 100)
    seam.replay([Delivery(head("a100")), Delivery(head("a101"))])
    assert seam.admit(Delivery(head("b101/a")))
    assert not seam.joined
    assert seam.admit(Delivery(head("b102")))
    assert seam.joined


def test_seam_for_logs_keys_on_block_index_and_removed() -> None:
    seam = ResumeSeam(SubscriptionKind.LOGS, 105)
    a105 = hash_of("a", 105)
    first = Delivery(log(a105, 105, 0))
    assert seam.replay([first]) == [first]
    assert not seam.admit(Delivery(log(a105.upper().replace("0X", "0x"), 105, 0)))
    assert seam.admit(Delivery(log(a105, 105, 0, removed=True)))
    assert seam.admit(Delivery(log(a105, 105, 1)))


def test_pending_transactions_cannot_be_resumed() -> None:
    with pytest.raises(ValueError, match="newPendingTransactions subscriptions cannot be resumed"):
        ResumeSeam(SubscriptionKind.NEW_PENDING_TRANSACTIONS, 1)


def test_log_replay_fetched_then_cached() -> None:
    stream = LogStream()
    stream.anchor(104)
    a = {n: hash_of("a", n) for n in range(100, 108)}
    for n in (105, 106, 107):
        stream.offer(log(a[n], n, 0))
    plan = make_plan(101, head=stream.last_complete or 0, cached=stream.cached_range)
    assert plan == ResumePlan(101, R(101, 105), R(105, 107))
    fetched = [log(a[103], 103, 1), log(a[102], 102, 0), log(a[103], 103, 0), log(a[106], 106, 0)]
    replay = stream.replay(plan, fetched)
    assert not isinstance(replay, ResumeRejected)
    got = [(int(d.payload["blockNumber"], 16), int(d.payload["logIndex"], 16)) for d in replay]
    assert got == [(102, 0), (103, 0), (103, 1), (105, 0), (106, 0)]
    assert stream.statistics().blocks == 3  # a stream already serving others is unchanged


def test_log_replay_on_a_fresh_stream_records_the_logs() -> None:
    stream = LogStream()
    stream.anchor(110)
    a102 = hash_of("a", 102)
    plan = make_plan(101, head=110, cached=stream.cached_range)
    assert plan == ResumePlan(101, R(101, 111), R(111, 111))
    replay = stream.replay(plan, [log(a102, 102, 0)])
    assert not isinstance(replay, ResumeRejected)
    assert len(replay) == 1
    assert len(stream.orphan([a102])) == 1  # a later reorg un-delivers it


def test_log_replay_when_the_window_moved_on() -> None:
    stream = LogStream(window=4)
    stream.anchor(104)
    for n in (105, 106, 107):
        stream.offer(log(hash_of("a", n), n, 0))
    plan = make_plan(105, head=106, cached=stream.cached_range)
    assert plan == ResumePlan(105, R(105, 105), R(105, 107))
    stream.offer(log(hash_of("a", 110), 110, 0))  # blocks up to 106 are forgotten
    assert stream.replay(plan, []) == ResumeRejected(
        "the replay window moved on; resubscribe to retry"
    )
