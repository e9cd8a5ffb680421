"""backfill_window: the one rule both streams use for what a new provider must supply."""

from __future__ import annotations

from lasso.core.subs.items import TooFar, backfill_window


def test_nothing_delivered_nothing_to_fill() -> None:
    assert backfill_window(None, 100, 8) == range(0)
    assert backfill_window(None, 100, 8, reread_from=90) == range(0)


def test_from_the_last_block_to_the_provider_head() -> None:
    assert backfill_window(10, 14, 8) == range(11, 15)
    assert backfill_window(10, 10, 8) == range(11, 11)  # caught up: empty
    assert backfill_window(10, 7, 8) == range(11, 11)  # a lagging provider: empty, not negative


def test_too_far_beyond_the_limit() -> None:
    assert backfill_window(10, 18, 8) == range(11, 19)
    assert backfill_window(10, 19, 8) == TooFar(11, 19, 8)
    assert backfill_window(10, 19, 8, reread_from=5) == TooFar(11, 19, 8)


def test_reread_goes_back_but_never_beyond_the_limit_below_the_head() -> None:
    assert backfill_window(10, 14, 8, reread_from=8) == range(8, 15)
    assert backfill_window(10, 14, 8, reread_from=2) == range(7, 15)  # 14 + 1 - 8
    assert backfill_window(10, 14, 8, reread_from=11) == range(11, 15)  # nothing to re-read
