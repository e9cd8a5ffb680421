"""The battle recorder: bounded per kind, drop counts visible, JSON lines round-trip losslessly."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from battle.events import (
    ChaosEvent,
    Dropped,
    HeadObservation,
    Outcome,
    Recorder,
    Recording,
    RequestEvent,
    ResourceSample,
    SubscriptionEvent,
    SubscriptionKind,
    decode_jsonl,
    encode_jsonl,
)

times = st.floats(min_value=0, max_value=1e9, allow_nan=False)
ids = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8))
names = st.text(min_size=1, max_size=8)

requests = st.builds(
    RequestEvent,
    scenario=names,
    client=names,
    transport=st.sampled_from(["http", "ws"]),
    method=names,
    sent_at=times,
    answered_at=st.none() | times,
    http_status=st.none() | st.integers(100, 599),
    outcome=st.sampled_from(Outcome),
    sent_id=ids,
    received_id=ids,
    error_code=st.none() | st.integers(-33000, 0),
    error_expected=st.booleans(),
    provider=st.none() | names,
    block=st.none() | st.integers(0, 2**64),
    empty_result=st.booleans(),
)
subscriptions = st.builds(
    SubscriptionEvent,
    client=names,
    subscription=names,
    kind=st.sampled_from(SubscriptionKind),
    number=st.integers(0, 2**64),
    hash=names,
    parent_hash=names,
    received_at=times,
    removed=st.booleans(),
    log_index=st.none() | st.integers(0, 1000),
)
chaos = st.builds(
    ChaosEvent, kind=names, target=st.none() | names, started_at=times, ended_at=st.none() | times
)
heads = st.builds(HeadObservation, client=names, number=st.integers(0, 2**64), at=times)
resources = st.builds(ResourceSample, rss_bytes=st.integers(0, 2**40), at=times)
events = st.one_of(requests, subscriptions, chaos, heads, resources)


def head(n: int, at: float = 0.0) -> HeadObservation:
    return HeadObservation("c", n, at)


@given(st.lists(events, max_size=30), st.integers(0, 10))
def test_jsonl_round_trip_is_lossless(recorded, limit):
    recorder = Recorder(limit=limit)
    for event in recorded:
        recorder.record(event)
    recording = recorder.recording()
    assert decode_jsonl(encode_jsonl(recording)) == recording


def test_recorder_keeps_the_first_events_per_kind_and_counts_the_rest():
    recorder = Recorder(limit=2)
    assert [recorder.record(head(n)) for n in range(5)] == [True, True, False, False, False]
    assert recorder.record(ResourceSample(1, 0.0))
    recording = recorder.recording()
    assert [h.number for h in recording.heads] == [0, 1]
    assert recording.resources == (ResourceSample(1, 0.0),)
    assert recording.dropped == Dropped(head=3)
    assert recording.dropped.total() == 3


def test_jsonl_lines_are_tagged_by_kind_and_end_with_the_drop_counts():
    recorder = Recorder(limit=1)
    recorder.record(head(7, 1.5))
    recorder.record(head(8, 2.5))
    lines = encode_jsonl(recorder.recording()).splitlines()
    assert [msgspec.json.decode(line)["type"] for line in lines] == ["head", "dropped"]
    assert msgspec.json.decode(lines[-1])["head"] == 1


def test_decode_rejects_an_unknown_kind():
    with pytest.raises(msgspec.ValidationError):
        decode_jsonl(b'{"type":"bogus"}\n')


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        head(1).number = 2  # type: ignore[misc]


def test_empty_recording_round_trips():
    assert decode_jsonl(encode_jsonl(Recording())) == Recording()
