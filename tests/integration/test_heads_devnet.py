"""Head tracking on the lockstep devnet, read through /health of the real front end:
a paused node lags and catches up, a forked node is flagged and clears, the consensus
head follows the majority, and each provider is tracked the way its config says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from lasso.config import parse_settings
from lasso.devnet import Devnet, open_devnet
from tests.support.front import open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Chain = dict[str, Any]


def settings_text(devnet: Devnet) -> str:
    """n0: WebSocket newHeads; n1: HTTP only; n2: a WebSocket but ``subscriptions = false``."""
    n0, n1, n2 = devnet.nodes
    return f"""
[chains.devnet]
chain_id = 31337
block_time_ms = 1000
head_poll_ms = 50
providers = [
  {{ id = "n0", url = "{n0.http_url}", ws_url = "{n0.ws_url}", priority = 0 }},
  {{ id = "n1", url = "{n1.http_url}", priority = 1 }},
  {{ id = "n2", url = "{n2.http_url}", ws_url = "{n2.ws_url}", priority = 2, subscriptions = false }},
]
"""


class Health:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def chain(self) -> Chain:
        response = await self.client.get("/health")
        assert response.status_code == 200
        chain: Chain = response.json()["chains"]["devnet"]
        return chain

    async def until(self, predicate: Callable[[Chain], bool], what: str) -> Chain:
        """/health, again every 20 ms until ``predicate`` holds (at most 10 s)."""
        chain: Chain = {}
        try:
            with trio.fail_after(10):
                while not predicate(chain := await self.chain()):  # noqa: ASYNC110
                    await trio.sleep(0.02)
        except trio.TooSlowError:
            raise AssertionError(f"never saw {what}; last /health: {chain}") from None
        return chain


def rows(chain: Chain) -> dict[str, tuple[int | None, int | None, bool | None]]:
    return {p["id"]: (p["height"], p["lag"], p["forked"]) for p in chain["providers"]}


def at(height: int, *, lags: tuple[int, int, int] = (0, 0, 0)) -> Callable[[Chain], bool]:
    """Every provider at ``height + lag`` with that lag, none forked."""

    def check(chain: Chain) -> bool:
        expected = {f"n{i}": (height + lag, lag, False) for i, lag in enumerate(lags)}
        return rows(chain) == expected

    return check


@asynccontextmanager
async def open_rig() -> AsyncIterator[tuple[Devnet, Health]]:
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        for _ in range(2):
            await devnet.mine()
        settings = parse_settings(settings_text(devnet), env={})
        async with (
            open_lasso(settings) as base,
            httpx.AsyncClient(base_url=base, trust_env=False) as client,
        ):
            health = Health(client)
            await health.until(at(2), "every provider at block 2")
            yield devnet, health


async def test_a_paused_node_lags_more_and_more_then_catches_up() -> None:
    with trio.fail_after(60):
        async with open_rig() as (devnet, health):
            devnet.pause(1)
            for _ in range(3):
                await devnet.mine()
            chain = await health.until(at(5, lags=(0, -3, 0)), "n1 three blocks behind")
            assert chain["consensus_head"] == 5
            for _ in range(2):
                await devnet.mine()
            await health.until(at(7, lags=(0, -5, 0)), "n1 five blocks behind")
            await devnet.resume(1)
            chain = await health.until(at(7), "n1 caught up")
            assert all(p["live"] for p in chain["providers"])


async def test_a_forked_node_is_flagged_until_it_heals() -> None:
    with trio.fail_after(60):
        async with open_rig() as (devnet, health):
            own_hash = await devnet.fork(2)
            await devnet.mine()  # n0 and n1 mine block 3 too, with another hash
            blocks = [
                await devnet.request(i, "eth_getBlockByNumber", ["0x3", False]) for i in (0, 2)
            ]
            assert blocks[0]["hash"] != blocks[1]["hash"] == own_hash

            def n2_forked(chain: Chain) -> bool:
                return rows(chain) == {"n0": (3, 0, False), "n1": (3, 0, False), "n2": (3, 0, True)}

            chain = await health.until(n2_forked, "n2 forked at block 3")
            assert chain["consensus_head"] == 3
            await devnet.mine()
            await health.until(
                lambda c: rows(c)["n2"] == (3, -1, True), "n2 still forked, one behind"
            )
            await devnet.heal(2)
            await health.until(at(4), "n2 back on the common chain")


async def test_the_consensus_head_follows_the_majority() -> None:
    with trio.fail_after(60):
        async with open_rig() as (devnet, health):
            devnet.pause(2)  # a minority stops: the head goes on with the majority
            for _ in range(2):
                await devnet.mine()
            chain = await health.until(at(4, lags=(0, 0, -2)), "n2 behind the majority")
            assert chain["consensus_head"] == 4
            devnet.pause(1)  # now the majority stops: one runaway cannot drag the head
            for _ in range(3):
                await devnet.mine()

            def majority_holds(chain: Chain) -> bool:
                return (
                    rows(chain)
                    == {
                        "n0": (7, 3, False),
                        "n1": (4, 0, False),
                        "n2": (2, -2, False),
                    }
                    and chain["consensus_head"] == 4
                )

            await health.until(majority_holds, "the head held at the majority's block 4")
            await devnet.resume(1)
            await devnet.resume(2)
            chain = await health.until(at(7), "everyone at 7")
            assert chain["consensus_head"] == 7
            assert chain["block_time_measured"] is True


async def test_each_provider_is_tracked_as_configured() -> None:
    with trio.fail_after(60):
        async with open_rig() as (devnet, health):
            for _ in range(3):
                await devnet.mine()
            chain = await health.until(at(5), "every provider at block 5")
            n0, n1, n2 = chain["providers"]
            assert n0["ws"]["transport"]["subscriptions"] == 1  # its newHeads
            assert n1["ws"] is None  # no WebSocket: polled over HTTP
            assert n2["ws"]["connected"] is True
            assert n2["ws"]["transport"]["subscriptions"] == 0  # subscriptions = false: polled
            # n1 and n2 reached block 5 by HTTP polls alone
            assert n1["http"]["transport"]["requests"] >= 1
            assert n2["http"]["transport"]["requests"] >= 1
