"""The parent's bookkeeping (lasso.core.workers), with times as plain numbers."""

from __future__ import annotations

import pytest

from lasso.core.workers import WorkerTable


def test_ready_once_every_worker_is_ready_and_only_once() -> None:
    table = WorkerTable(2, stale_s=5.0, stable_s=10.0)
    table.spawned(0, 100, now=0.0)
    table.spawned(1, 101, now=0.0)
    assert table.ready(0, now=1.0) is False
    assert table.status() == "1/2 workers up"
    assert table.ready(1, now=1.5) is True
    assert table.status() == "2/2 workers up"
    table.exited(1, now=2.0)
    table.spawned(1, 102, now=2.1)
    assert table.ready(1, now=3.0) is False  # a restart is not a second READY=1


def test_the_watchdog_needs_every_worker_up_and_recently_heard() -> None:
    table = WorkerTable(2, stale_s=5.0)
    table.spawned(0, 100, now=0.0)
    table.spawned(1, 101, now=0.0)
    assert not table.healthy(1.0)  # not ready yet
    table.ready(0, now=1.0)
    table.ready(1, now=1.0)
    assert table.healthy(5.9)
    table.pinged(0, now=5.0)
    assert not table.healthy(6.0)  # worker 1 silent for 5 s
    assert table.stale(6.0, start_timeout_s=60.0) == [101]
    table.exited(1, now=6.1)
    assert not table.healthy(6.2)  # down until its successor is ready


def test_a_worker_that_never_gets_ready_is_killed_after_the_start_timeout() -> None:
    table = WorkerTable(1)
    table.spawned(0, 100, now=0.0)
    assert table.stale(59.0, start_timeout_s=60.0) == []
    assert table.stale(60.0, start_timeout_s=60.0) == [100]


def test_restart_backoff_grows_while_workers_crash_and_resets_after_a_stable_run() -> None:
    table = WorkerTable(1, stable_s=10.0)
    attempts = []
    now = 0.0
    for _ in range(3):  # crash at once, three times
        table.spawned(0, 100, now)
        attempts.append(table.exited(0, now + 0.5))
        now += 1.0
    assert attempts == [0, 1, 2]
    table.spawned(0, 100, now)
    table.ready(0, now + 1.0)
    assert table.exited(0, now + 20.0) == 0  # it ran 20 s: a fresh start
    assert table.slots[0].restarts == 4


def test_a_group_has_at_least_one_worker() -> None:
    with pytest.raises(ValueError, match="count"):
        WorkerTable(0)
