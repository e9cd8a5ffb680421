"""Head tracking decisions: the poll interval, the quiet check, what a head is."""

from __future__ import annotations

import pytest

from lasso.core.headpoll import Head, head_from_block, parse_head, poll_interval_s, quiet_check_s


@pytest.mark.parametrize(
    ("block_time_ms", "expected_s"),
    [
        (12_000, 6.0),  # half the block time
        (2_000, 1.0),
        (400, 0.25),  # never below 250 ms
        (1, 0.25),
        (60_000, 15.0),  # never above 15 s
        (31_000, 15.0),
        (29_000, 14.5),
    ],
)
def test_the_derived_interval_is_half_the_block_time_clamped(
    block_time_ms: float, expected_s: float
) -> None:
    assert poll_interval_s(None, block_time_ms) == expected_s


def test_a_configured_interval_wins_and_zero_turns_tracking_off() -> None:
    assert poll_interval_s(100, 12_000) == 0.1  # as configured, no clamp
    assert poll_interval_s(40_000, 12_000) == 40.0
    assert poll_interval_s(0, 12_000) is None


def test_the_quiet_check_is_two_block_times_clamped() -> None:
    assert quiet_check_s(2_000) == 4.0
    assert quiet_check_s(100) == 1.0
    assert quiet_check_s(12_000) == 20.0


def test_a_head_is_read_from_block_json() -> None:
    raw = b'{"number":"0x1b4","hash":"0xAB","parentHash":"0xcd","timestamp":"0x1","extra":[1]}'
    assert parse_head(raw) == Head(436, "0xAB", "0xcd")
    assert parse_head(b'{"number":"0x0","hash":"0x01"}') == Head(0, "0x01", None)


@pytest.mark.parametrize(
    "raw",
    [
        b"null",
        b"[]",
        b'"0x10"',
        b'{"hash":"0x01"}',
        b'{"number":"12","hash":"0x01"}',
        b'{"number":"0xzz","hash":"0x01"}',
        b'{"number":"0x1","hash":""}',
        b'{"number":1,"hash":"0x01"}',
        b"{not json",
    ],
)
def test_anything_else_is_not_a_head(raw: bytes) -> None:
    assert parse_head(raw) is None


def test_a_decoded_block_gives_the_same_head() -> None:
    block = {"number": "0x10", "hash": "0xaa", "parentHash": "0xbb"}
    assert head_from_block(block) == Head(16, "0xaa", "0xbb")
    assert head_from_block({"number": "0x10", "hash": "0xaa", "parentHash": None}) == Head(
        16, "0xaa", None
    )
    assert head_from_block(None) is None
    assert head_from_block({"number": "0x10"}) is None
