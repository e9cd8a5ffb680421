"""The battle recorder: bounded per kind, drop counts visible, JSON lines round-trip losslessly."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from battle.events import (
    Dropped,
    HeadObservation,
    Recorder,
    Recording,
    ResourceSample,
    decode_jsonl,
    encode_jsonl,
)
from tests.battle.strategies import events


def head(n: int, at: float = 0.0) -> HeadObservation:
    return HeadObservation("c", n, at)


@pytest.mark.slow
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
