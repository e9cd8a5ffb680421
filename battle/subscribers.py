"""Subscribers over the gateway's WebSocket, and the devnet traffic that gives ``logs`` something.

:func:`run_subscribers` runs one ``newHeads`` subscriber (``sub-heads-1``) and, with chain data,
one ``logs`` subscriber on the emitter (``sub-logs-1``), each on its own connection, for
``duration_s``. Every notification becomes a :class:`~battle.events.SubscriptionEvent` under the
gateway's subscription id. When the connection drops, or the subscribe call fails, the
subscriber reconnects (short capped backoff) and subscribes again, which gives a new
subscription id: a new stream for the gap and duplicate SLOs, as it is for a real client.

:func:`make_log_traffic` sends one transaction to the emitter per devnet block, so a ``logs``
subscription sees a log every block.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from trio_websocket import WebSocketConnection

from battle.answers import hex_number
from battle.chaindata import ChainData
from battle.clients import RECONNECT_CAP_S, RECONNECT_FIRST_S, WS_ERRORS, Endpoint, connect_ws
from battle.events import Recorder, SubscriptionEvent, SubscriptionKind
from lasso.devnet import DEV_ACCOUNTS, Devnet, DevnetError

#: The account :func:`make_log_traffic` sends from: no other part of the harness uses it, so
#: the node's pending nonce is always this loop's own.
LOG_SENDER = DEV_ACCOUNTS[7]
LOG_GAS = 100_000
SUBSCRIBE_DEADLINE_S = 10.0


def notification(
    frame: str | bytes, client: str, subscription: str, kind: SubscriptionKind, received_at: float
) -> SubscriptionEvent | None:
    """The event for one ``eth_subscription`` frame of ``subscription``; None for any other."""
    try:
        message = msgspec.json.decode(frame)
    except msgspec.DecodeError:
        return None
    if not isinstance(message, dict) or message.get("method") != "eth_subscription":
        return None
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    result = params.get("result")
    if params.get("subscription") != subscription or not isinstance(result, dict):
        return None
    if kind is SubscriptionKind.HEADS:
        number, block_hash = result.get("number"), result.get("hash")
        parent, log_index = result.get("parentHash"), None
    else:
        number, block_hash, parent = result.get("blockNumber"), result.get("blockHash"), ""
        log_index = hex_number(result.get("logIndex"))
    n = hex_number(number)
    if n is None or not isinstance(block_hash, str) or not isinstance(parent, str):
        return None
    removed = result.get("removed") is True
    return SubscriptionEvent(
        client, subscription, kind, n, block_hash, parent, received_at, removed, log_index
    )


def subscribe_params(kind: SubscriptionKind, data: ChainData | None) -> list[Any]:
    if kind is SubscriptionKind.HEADS:
        return ["newHeads"]
    return ["logs", {"address": data.emitter}] if data is not None else ["logs", {}]


async def _subscribe(ws: WebSocketConnection, params: list[Any]) -> str | None:
    """Send ``eth_subscribe``; its subscription id, or None when refused."""
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params}
    await ws.send_message(msgspec.json.encode(request).decode())
    while True:
        message = msgspec.json.decode(await ws.get_message())
        if isinstance(message, dict) and message.get("id") == 1:
            result = message.get("result")
            return result if isinstance(result, str) else None


async def subscriber(
    endpoint: Endpoint, recorder: Recorder, client: str, kind: SubscriptionKind, params: list[Any]
) -> None:
    """Subscribe and record until cancelled, reconnecting and resubscribing when cut."""
    delay = RECONNECT_FIRST_S
    while True:
        try:
            async with connect_ws(endpoint.ws_url) as ws:
                subscription = None
                with trio.move_on_after(SUBSCRIBE_DEADLINE_S):
                    subscription = await _subscribe(ws, params)
                if subscription is not None:
                    delay = RECONNECT_FIRST_S
                    while True:
                        frame = await ws.get_message()
                        event = notification(frame, client, subscription, kind, trio.current_time())
                        if event is not None:
                            recorder.record(event)
        except (*WS_ERRORS, msgspec.DecodeError):
            pass
        await trio.sleep(delay)
        delay = min(delay * 2, RECONNECT_CAP_S)


async def run_subscribers(
    endpoint: Endpoint, recorder: Recorder, duration_s: float, data: ChainData | None
) -> None:
    """``newHeads`` (and, with chain data, ``logs`` on the emitter) for ``duration_s``."""
    kinds = [SubscriptionKind.HEADS] + ([SubscriptionKind.LOGS] if data is not None else [])
    with trio.move_on_after(duration_s):
        async with trio.open_nursery() as nursery:
            for kind in kinds:
                name = "sub-heads-1" if kind is SubscriptionKind.HEADS else "sub-logs-1"
                params = subscribe_params(kind, data)
                nursery.start_soon(subscriber, endpoint, recorder, name, kind, params)


async def make_log_traffic(devnet: Devnet, emitter: str, duration_s: float) -> None:
    """For ``duration_s``, send one transaction to ``emitter`` per block mined on ``devnet``.

    Each is signed by a node (from :data:`LOG_SENDER`, the node filling in its pending nonce:
    every earlier one reached every in-sync node before this one is signed) and sent to every
    node. A block whose transaction fails (a node down or disagreeing) is skipped.
    """
    with trio.move_on_after(duration_s):
        while True:
            height = devnet.statistics().blocks_mined
            try:
                raw = await devnet.sign_transfer(
                    to=emitter, value_wei=0, sender=LOG_SENDER, gas=LOG_GAS
                )
                await devnet.send_raw_transaction(raw)
            except (DevnetError, trio.TooSlowError):
                pass
            await devnet.wait_for_block(height + 1)
