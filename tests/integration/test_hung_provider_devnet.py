"""A hung provider (SIGSTOP: it holds its sockets and answers nothing) must not cost a
call its whole deadline over its HTTP channel and then its WebSocket channel while
healthy providers remain.

Before: right after the freeze, ``eth_blockNumber`` (1 s deadline) on the priority
route timed out on n0 over HTTP (600 ms), then on n0 over WebSocket (the 390 ms
left), and the client got -32000 with two healthy nodes up. After a timeout, the
provider's other channels go after the other providers'.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
import trio

from lasso.config import Settings
from lasso.config.schema import HedgeConfig
from lasso.devnet import Devnet, open_devnet
from tests.support.front import devnet_settings, open_lasso

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def block_number_with_n0_frozen(
    settings: Callable[[Devnet], Settings], query: str = ""
) -> dict[str, Any]:
    """``eth_blockNumber`` on the priority route just after n0 (first on both transports)
    is frozen, through the real front end on a fresh 3-node devnet at block 2."""
    async with open_devnet(nodes=3, block_time_s=None, port_base=0) as devnet:
        for _ in range(2):
            await devnet.mine()
        async with open_lasso(settings(devnet)) as base, httpx.AsyncClient() as client:
            url = f"{base}/rpc/priority/devnet{query}"
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"})
            with trio.fail_after(10):
                warm = (await client.post(url, content=body)).json()
                assert warm["result"] == "0x2"
                devnet.freeze(0)
                try:
                    answer: dict[str, Any] = (await client.post(url, content=body)).json()
                finally:
                    devnet.thaw(0)
    return answer


async def test_a_hung_providers_second_channel_waits_behind_the_healthy_providers() -> None:
    answer = await block_number_with_n0_frozen(devnet_settings)
    assert answer == {"jsonrpc": "2.0", "id": 1, "result": "0x2"}


def hedged_two_attempts(devnet: Devnet) -> Settings:
    """Hedge after 100 ms, two attempts: without providers-first ordering they are
    n0:http and n0:ws, both frozen."""
    settings = devnet_settings(devnet)
    chain = settings.default_profile.chains["devnet"]
    hedged = msgspec.structs.replace(chain, hedge=HedgeConfig(after_ms=100))
    profile = msgspec.structs.replace(settings.default_profile, chains={"devnet": hedged})
    routing = msgspec.structs.replace(settings.routing, max_attempts=2)
    return msgspec.structs.replace(settings, profiles={"default": profile}, routing=routing)


async def test_a_hedged_read_races_another_provider_not_the_hung_ones_other_channel() -> None:
    answer = await block_number_with_n0_frozen(hedged_two_attempts, "?include_meta=body")
    assert answer["result"] == "0x2", answer  # the hedge raced n1, not the frozen n0's WS
    assert answer["lasso_meta"]["selected_provider"]["id"] == "n1"
