"""The inbound token bucket and its bounded table: pure, time passed in."""

from __future__ import annotations

import pytest

from lasso.core.tokenbucket import BucketTable, TokenBucket, default_burst


def test_a_full_bucket_admits_its_burst_then_says_when_to_come_back() -> None:
    bucket = TokenBucket(burst=20, now=0.0)
    takes = [bucket.take(10.0, 20, 1, now=0.0) for _ in range(50)]
    assert sum(t.admitted for t in takes) == 20
    refused = [t for t in takes if not t.admitted]
    assert len(refused) == 30
    assert {t.retry_after_ms for t in refused} == {100}  # one token at 10/s
    assert {t.retry_after_header for t in refused} == {1}
    assert [t.entered_limited for t in refused] == [True] + [False] * 29


def test_it_refills_at_the_rate_and_a_refusal_takes_nothing() -> None:
    bucket = TokenBucket(burst=2, now=0.0)
    assert bucket.take(10.0, 2, 2, now=0.0).admitted
    assert not bucket.take(10.0, 2, 1, now=0.05).admitted  # half a token
    assert bucket.take(10.0, 2, 1, now=0.1).admitted  # exactly one, refusal cost nothing
    assert not bucket.take(10.0, 2, 1, now=0.1).admitted
    assert bucket.take(10.0, 2, 2, now=10.0).admitted  # capped at the burst, not 99 tokens
    assert not bucket.take(10.0, 2, 1, now=10.0).admitted


def test_a_batch_costs_one_token_per_call_but_never_more_than_the_burst() -> None:
    bucket = TokenBucket(burst=5, now=0.0)
    assert bucket.take(1.0, 5, 3, now=0.0).admitted
    refused = bucket.take(1.0, 5, 3, now=0.0)
    assert not refused.admitted and refused.retry_after_ms == 1000  # 2 left, 3 wanted
    # A batch larger than the burst passes on a full bucket and empties it.
    assert bucket.take(1.0, 5, 50, now=10.0).admitted
    assert not bucket.take(1.0, 5, 1, now=10.0).admitted


def test_the_limited_state_is_reported_once_per_transition() -> None:
    bucket = TokenBucket(burst=1, now=0.0)
    assert bucket.take(1.0, 1, 1, now=0.0).admitted
    first, again = bucket.take(1.0, 1, 1, now=0.0), bucket.take(1.0, 1, 1, now=0.5)
    assert first.entered_limited and not again.entered_limited
    assert bucket.take(1.0, 1, 1, now=1.0).admitted
    assert bucket.take(1.0, 1, 1, now=1.0).entered_limited  # a new transition


def test_a_new_rate_or_burst_applies_at_the_next_take_and_tokens_carry_over() -> None:
    bucket = TokenBucket(burst=10, now=0.0)
    for _ in range(10):
        assert bucket.take(1.0, 10, 1, now=0.0).admitted
    # A reload raises the burst: the bucket is still empty, not refilled.
    assert not bucket.take(1.0, 100, 1, now=0.0).admitted
    # A reload lowers the burst: a full bucket is clamped to it.
    assert bucket.take(1.0, 3, 3, now=1000.0).admitted
    assert not bucket.take(1.0, 3, 1, now=1000.0).admitted
    assert bucket.take(100.0, 3, 1, now=1000.01).admitted  # the new rate


def test_default_burst_is_one_seconds_worth() -> None:
    assert default_burst(10) == 10
    assert default_burst(0.5) == 1
    assert default_burst(2.5) == 3


def test_bad_limits_are_our_bug() -> None:
    with pytest.raises(ValueError):
        TokenBucket(1, 0.0).take(0.0, 1, 1, now=0.0)
    with pytest.raises(ValueError):
        BucketTable(0)


def test_the_table_stays_bounded_under_a_spray_of_100k_client_keys() -> None:
    table = BucketTable(max_buckets=1000)
    victim = ("ip:10.0.0.1", "")
    table.take(victim, 1.0, 1, 1, now=0.0)
    for n in range(100_000):
        table.take((f"ip:attacker-{n}", ""), 1.0, 1, 1, now=0.0)
        if n % 500 == 0:  # a steady client keeps its bucket: it is recently used
            table.take(victim, 1.0, 1, 1, now=0.0)
        assert len(table) <= 1000
    stats = table.statistics()
    assert stats.buckets == 1000 and stats.max_buckets == 1000
    assert stats.evicted == 100_001 - 1000
    assert victim in table
    assert stats.limited == 1  # the victim, refused since its first call


def test_eviction_goes_least_recently_used_first_and_resize_shrinks() -> None:
    table = BucketTable(max_buckets=3)
    for key in ("a", "b", "c"):
        table.take(key, 1.0, 1, 1, now=0.0)
    table.take("a", 1.0, 1, 1, now=0.0)  # refused, but used: a is now the newest
    table.take("d", 1.0, 1, 1, now=0.0)
    assert "b" not in table and {"a", "c", "d"} == {k for k in "abcd" if k in table}
    assert table.statistics().limited == 1
    table.resize(1)
    assert len(table) == 1 and "d" in table
    assert table.statistics().limited == 0  # a, the limited one, was evicted


def test_forget_drops_the_buckets_a_predicate_names() -> None:
    table = BucketTable(max_buckets=10)
    for key in ("key:a", "key:b", "ip:1.2.3.4"):
        table.take(key, 1.0, 1, 2, now=0.0)
    table.take("key:a", 1.0, 1, 1, now=0.0)
    assert table.forget(lambda key: key == "key:a") == 1
    assert len(table) == 2 and table.statistics().limited == 0
