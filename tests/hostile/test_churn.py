"""Subscription churn on one socket: 2,000 distinct ``logs`` filters, each unsubscribed.

Before the fix this left 2,001 upstream subscriptions behind; now at most
``[subscriptions] max_idle_upstream_per_client`` stay, idle, for their teardown grace.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
import trio

from lasso.config import SubscriptionConfig
from tests.hostile.conftest import Front
from tests.support.hostile import open_raw_websocket

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FILTERS = 2_000


async def upstream_log_subscriptions(base: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{base}/metrics")).text
    found = re.findall(r'lasso_upstream_subscriptions\{[^}]*kind="logs"[^}]*\} (\d+)', text)
    return sum(int(n) for n in found)


async def test_subscribe_unsubscribe_churn_leaves_no_upstream_subscription(front: Front) -> None:
    ws = await open_raw_websocket("127.0.0.1", front.port, "/ws/rpc/devnet")
    with trio.fail_after(40):
        for i in range(FILTERS):
            address = "0x" + f"{i:040x}"
            await ws.send_text(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": i,
                        "method": "eth_subscribe",
                        "params": ["logs", {"address": address}],
                    }
                )
            )
            answer = json.loads((await ws.message())[1])
            await ws.send_text(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": i,
                        "method": "eth_unsubscribe",
                        "params": [answer["result"]],
                    }
                )
            )
            assert json.loads((await ws.message())[1])["result"] is True
        # Past the per-client idle bound, the oldest idle upstream subscription is torn
        # down at once: what is left is the bound, not the churn.
        left = await upstream_log_subscriptions(front.base)
    assert left <= SubscriptionConfig().max_idle_upstream_per_client
    await ws.aclose()
    await front.check_canary()
