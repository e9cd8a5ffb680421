"""``lasso_trio_tasks``: the live trio tasks at scrape time (the soak's leak check)."""

from __future__ import annotations

import trio
import trio.testing

from lasso.metrics.collector import live_trio_tasks
from lasso.web.asgi import LassoASGI
from tests.metrics.scrape import parse
from tests.support.asgi import asgi_request


async def test_counts_every_live_task_from_the_root_down() -> None:
    before = live_trio_tasks()
    assert before is not None
    async with trio.open_nursery() as outer:
        for _ in range(3):
            outer.start_soon(trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        inner_started = trio.Event()

        async def nested() -> None:
            async with trio.open_nursery() as inner:
                inner.start_soon(trio.sleep_forever)
                inner.start_soon(trio.sleep_forever)
                inner_started.set()

        outer.start_soon(nested)
        await inner_started.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert live_trio_tasks() == before + 3 + 1 + 2
        outer.cancel_scope.cancel()
    assert live_trio_tasks() == before


def test_outside_trio_there_is_no_count() -> None:
    assert live_trio_tasks() is None


async def test_the_gauge_is_on_metrics(app: LassoASGI) -> None:
    response = await asgi_request(app, "GET", "/metrics")
    tasks = parse(response.body).value("lasso_trio_tasks")
    assert tasks >= 1
