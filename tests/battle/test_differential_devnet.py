"""Differential fuzzing: Hypothesis-drawn requests through Lasso answer as a node does.

A 3-node lockstep devnet is seeded with the harness's chain (:mod:`battle.chaindata`),
Lasso's real front end serves it (:func:`tests.support.front.open_lasso`), and each drawn
request (:mod:`battle.strategies`: 73 methods, valid and invalid params, batches) goes
to Lasso and straight to node 0; :mod:`battle.oracle` judges the pair. A failure shows
the shrunk request and the verdict's reason.

Derandomized like the rest of the suite (the same examples every run). To hunt for new
counterexamples: ``make explore`` or ``HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest
tests/battle``. A failure prints the shrunk request, the verdict and a
``@reproduce_failure(...)`` line: paste that decorator onto ``run`` below to replay it
(or rerun with ``--hypothesis-seed=N``, the seed Hypothesis prints for a random run).
The battle's fuzz phase (:func:`battle.fuzz.run_fuzz`) uses the same rig, seeded, and
saves each failure for ``python -m battle replay FILE``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from battle.chaindata import ChainData, create_chain_data
from battle.fuzz import Rig, open_rig
from battle.oracle import Verdict
from battle.strategies import Drawn, all_methods, requests
from lasso.devnet import open_devnet
from tests.support.front import devnet_settings, open_lasso

EXAMPLES = 300


@asynccontextmanager
async def rig() -> AsyncIterator[tuple[Rig, ChainData]]:
    """The fuzz phase's own rig (battle/fuzz.py) on Lasso in front of a 3-node devnet."""
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        with trio.fail_after(30):
            data = await create_chain_data(devnet)
        node = devnet.nodes[0]
        async with (
            open_lasso(devnet_settings(devnet)) as base,
            open_rig(f"{base}/rpc/devnet", node.http_url, node.ws_url) as the_rig,
        ):
            yield the_rig, data


@pytest.mark.integration
@pytest.mark.slow
async def test_drawn_requests_through_lasso_answer_as_the_node_does() -> None:
    assert len(all_methods()) >= 40
    async with rig() as (the_rig, data):
        seen: list[tuple[Drawn, Verdict]] = []

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            print_blob=True,  # the failure prints @reproduce_failure(...) to replay it
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.data())
        def run(draw: st.DataObject) -> None:
            drawn = draw.draw(requests(data), label="request")
            verdict = trio.from_thread.run(the_rig.verdict, drawn)
            seen.append((drawn, verdict))
            assert verdict.ok, f"{verdict}\nrequest: {drawn.show()}"

        with trio.fail_after(50):
            await trio.to_thread.run_sync(run)
    assert len(seen) >= EXAMPLES
