"""The upstream subscription budget of one chain: live, idle, and idle per client."""

from __future__ import annotations

import pytest

from lasso.core.subs.budget import Refused, UpstreamBudget


def budget(live: int = 10, idle: int = 3, per_client: int = 2) -> UpstreamBudget[str]:
    return UpstreamBudget(max_live=live, max_idle=idle, max_idle_per_client=per_client)


def test_a_client_keeps_at_most_its_own_idle_bound_oldest_torn_down_first() -> None:
    b = budget(per_client=2)
    for s in "abc":
        assert b.admit(s) == []
    assert b.idle("a", "client") == []
    assert b.idle("b", "client") == []
    assert b.idle("c", "client") == ["a"]  # the third idle of one client
    assert b.statistics().idle == 2
    assert b.statistics().live == 2


def test_the_chain_keeps_at_most_its_idle_bound_whoever_left_them() -> None:
    b = budget(idle=2, per_client=5)
    for n, s in enumerate("abc"):
        b.admit(s)
        assert b.idle(s, f"client{n}") == ([] if s != "c" else ["a"])
    assert b.statistics().evicted == 1


def test_a_stream_in_use_again_is_no_longer_idle() -> None:
    b = budget(idle=1)
    b.admit("a")
    b.admit("b")
    b.idle("a", None)
    b.busy("a")
    assert b.idle("b", None) == []  # only b idles now
    assert b.statistics().idle == 1


def test_past_the_live_bound_an_idle_stream_makes_room_else_refused() -> None:
    b = budget(live=2)
    b.admit("a")
    b.admit("b")
    with pytest.raises(Refused):
        b.admit("c")
    b.idle("a", None)
    assert b.admit("c") == ["a"]
    assert b.statistics().refused == 1


def test_zero_idle_tears_down_at_once_and_gone_is_idempotent() -> None:
    b = budget(idle=0)
    b.admit("a")
    assert b.idle("a", "x") == ["a"]
    b.gone("a")
    b.gone("a")
    assert b.idle("a", "x") == []  # a gone stream never idles again
    assert b.statistics().live == 0


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        UpstreamBudget[str](max_live=0, max_idle=1, max_idle_per_client=1)
