"""Provider supervision on virtual time: restart with backoff, quarantine, never a crash out."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from lasso.core.backoff import Backoff, RestartTracker
from lasso.upstream.supervisor import Supervisor


class Flaky:
    """A service that crashes ``crashes`` times, then runs until cancelled."""

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.starts: list[float] = []
        self.survived = trio.Event()  # the start after the last crash

    async def run(self) -> None:
        self.starts.append(trio.current_time())
        if len(self.starts) == self.crashes + 1:
            self.survived.set()
        if len(self.starts) <= self.crashes:
            raise ConnectionError(f"crash {len(self.starts)}")
        await trio.sleep_forever()


def supervisor(service: Flaky, *, seed: int = 1) -> Supervisor:
    return Supervisor(
        "p1",
        service.run,
        backoff=Backoff(base_s=0.5, cap_s=30.0),
        tracker=RestartTracker(max_restarts=5, window_s=60.0),
        rng=random.Random(seed),
    )


async def test_a_crashing_service_restarts_with_jittered_capped_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = Flaky(crashes=8)
    sup = supervisor(service)
    expected_rng = random.Random(1)
    backoff = Backoff(base_s=0.5, cap_s=30.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert len(service.starts) == 9
    gaps = [b - a for a, b in zip(service.starts, service.starts[1:], strict=False)]
    assert gaps == pytest.approx([backoff.delay(n, expected_rng) for n in range(1, 9)])
    assert all(gap <= 30.0 for gap in gaps)
    stats = sup.statistics()
    assert stats.restarts == 8
    assert stats.last_error == "ConnectionError: crash 8"


async def test_too_many_restarts_quarantine_until_they_age_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = Flaky(crashes=6)
    sup = supervisor(service)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        await service.survived.wait()
        assert service.starts[-1] < 60
        assert sup.quarantined  # 6 restarts inside 60 s
        await trio.sleep(61)
        assert not sup.quarantined  # they aged out of the window
        nursery.cancel_scope.cancel()


async def test_cancellation_is_never_swallowed(autojump_clock: trio.testing.MockClock) -> None:
    service = Flaky(crashes=0)
    sup = supervisor(service)
    with trio.move_on_after(5) as scope:
        await sup.run()
    assert scope.cancelled_caught
    assert sup.statistics().restarts == 0


async def test_restarts_a_service_reports_itself_count_towards_quarantine(
    autojump_clock: trio.testing.MockClock,
) -> None:
    service = Flaky(crashes=0)
    sup = supervisor(service)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for n in range(6):
            sup.record_restart(f"flap {n}")
            assert sup.quarantined is (n == 5)
            await trio.sleep(10.0)
        assert sup.statistics().restarts == 6
        assert sup.statistics().last_error == "flap 5"
        assert len(service.starts) == 1  # the service itself never stopped
        await trio.sleep_until(60.0)  # the first report (t=0) leaves the window
        assert not sup.quarantined
        nursery.cancel_scope.cancel()
