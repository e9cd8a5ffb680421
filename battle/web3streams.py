"""The web3 workload's streams: ``newHeads`` over the WebSocket and filter polling over HTTP.

Both record what they receive as :class:`SubscriptionEvent`s so gaps and duplicates are
measured for them as for the raw subscribers:

- ``newHeads`` (client ``web3-ws``, kind HEADS) through web3 v8's subscription manager:
  ``w3.eth.subscribe("newHeads")`` then ``w3.socket.process_subscriptions()``. The
  connection is web3's reconnecting form, ``async for w3 in AsyncWeb3(WebSocketProvider)``:
  when the gateway drops the socket the body ends, web3 reconnects, and we subscribe again
  (web3 does not restore subscriptions itself). Each subscription id is its own stream.
- filter polling (client ``web3-filter``): a block filter (``eth_newBlockFilter``) and, with
  chain data, a log filter on the emitter (``eth_newFilter``), polled with
  ``eth_getFilterChanges`` every ``POLL_S``. Each block hash is looked up
  (``eth_getBlockByHash``, cached; a failed lookup is tried again at the next poll, the
  hashes after it waiting in order) for its number and parent, so the hashes become HEADS
  events and the logs LOGS events of the filter's stream. A failed poll drops the filter and
  installs a new one (what an application does on "filter not found"): a new stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from web3 import AsyncWeb3
from web3.exceptions import TimeExhausted
from web3.types import FilterParams

from battle.chaindata import ChainData
from battle.events import SubscriptionEvent, SubscriptionKind
from battle.web3calls import NO_ANSWER, RecordingWebSocketProvider
from battle.web3record import Sink, timed

_log = logging.getLogger(__name__)

POLL_S = 0.5
_GONE: tuple[type[BaseException], ...] = (*NO_ANSWER, TimeExhausted)
RETRY_S = 0.5


def hex_of(value: Any) -> str:
    """A hash as web3 formats it (HexBytes, bytes or str) in ``0x`` lowercase hex."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()


def int_of(value: Any) -> int:
    return value if isinstance(value, int) else int(str(value), 16)


@dataclass
class Socket:
    """The web3 WebSocket connection as the unary calls see it: None while reconnecting."""

    w3: AsyncWeb3[RecordingWebSocketProvider] | None = None
    connects: int = 0
    broken: int = 0  # sessions ended by an error other than a lost connection


async def run_heads(url: str, sink: Sink, socket: Socket, request_timeout_s: float) -> None:
    """Stay subscribed to ``newHeads`` over ``url`` until cancelled, reconnecting as needed."""
    while True:
        provider = RecordingWebSocketProvider(url, request_timeout=request_timeout_s)
        try:
            async for w3 in AsyncWeb3(provider):
                socket.w3, socket.connects = w3, socket.connects + 1
                try:
                    await _heads(w3, sink)
                except _GONE:
                    pass  # the socket is gone: web3's loop reconnects
                except Exception as exc:  # web3's listener died on what the gateway sent
                    socket.broken += 1
                    _log.warning("web3 socket broke, reconnecting: %r", exc)
                finally:
                    socket.w3 = None
        except NO_ANSWER:
            await asyncio.sleep(RETRY_S)  # web3 gave up connecting: start over
        finally:
            await provider.disconnect()


async def _heads(w3: AsyncWeb3[RecordingWebSocketProvider], sink: Sink) -> None:
    sub_id = await timed(
        sink, "web3-ws", "ws", "eth_subscribe", lambda: w3.eth.subscribe("newHeads")
    )
    if sub_id is None:
        await asyncio.sleep(RETRY_S)
        return  # reconnect and try again
    async for message in w3.socket.process_subscriptions():
        head = message["result"]
        if not isinstance(head, Mapping):
            continue
        sink.put(
            SubscriptionEvent(
                client="web3-ws",
                subscription=str(message["subscription"]),
                kind=SubscriptionKind.HEADS,
                number=int_of(head["number"]),
                hash=hex_of(head["hash"]),
                parent_hash=hex_of(head["parentHash"]),
                received_at=sink.clock.now(),
            )
        )
    # the stream ended: web3's listener stopped (the gateway closed the socket cleanly)


@dataclass
class _Filters:
    block: str | None = None
    logs: str | None = None
    blocks: dict[str, tuple[int, str]] = field(default_factory=dict)  # hash -> number, parent
    unlooked: list[str] = field(default_factory=list)  # block hashes whose lookup failed


async def run_filters(w3: AsyncWeb3[Any], sink: Sink, data: ChainData | None) -> None:
    """Poll a block filter (and, with ``data``, a log filter) until cancelled."""
    state = _Filters()
    log_params: FilterParams | None = None
    if data is not None:
        log_params = {
            "address": AsyncWeb3.to_checksum_address(data.emitter),
            "topics": [data.topic],
        }
    while True:
        try:
            await _poll(w3, sink, state, log_params)
        except Exception as exc:  # an answer web3 took but of a shape we cannot read
            _log.warning("web3 filter poll failed, installing new filters: %r", exc)
            state.block, state.logs, state.unlooked = None, None, []
        await asyncio.sleep(POLL_S)


async def _poll(
    w3: AsyncWeb3[Any], sink: Sink, state: _Filters, log_params: FilterParams | None
) -> None:
    """One poll of each filter, installing those not installed."""
    if state.block is None:
        state.block = await _install(w3, sink, "eth_newBlockFilter", "latest")
    if state.block is not None:
        await _poll_blocks(w3, sink, state)
    if log_params is not None and state.logs is None:
        state.logs = await _install(w3, sink, "eth_newFilter", log_params)
    if state.logs is not None:
        await _poll_logs(w3, sink, state)


async def _install(
    w3: AsyncWeb3[Any], sink: Sink, method: str, params: str | FilterParams
) -> str | None:
    made = await timed(sink, "web3-filter", "http", method, lambda: w3.eth.filter(params))
    return None if made is None else str(made.filter_id)


async def _changes(w3: AsyncWeb3[Any], sink: Sink, filter_id: str) -> list[Any] | None:
    changes = await timed(
        sink,
        "web3-filter",
        "http",
        "eth_getFilterChanges",
        lambda: w3.eth.get_filter_changes(filter_id),  # type: ignore[arg-type]
    )
    return None if changes is None else list(changes)


async def _block(
    w3: AsyncWeb3[Any], sink: Sink, state: _Filters, block_hash: str
) -> tuple[int, str] | None:
    known = state.blocks.get(block_hash)
    if known is not None:
        return known
    block = await timed(
        sink,
        "web3-filter",
        "http",
        "eth_getBlockByHash",
        lambda: w3.eth.get_block(block_hash),  # type: ignore[arg-type]
    )
    if block is None:
        return None
    known = (int_of(block["number"]), hex_of(block["parentHash"]))
    if len(state.blocks) > 4096:
        state.blocks.clear()
    state.blocks[block_hash] = known
    return known


async def _poll_blocks(w3: AsyncWeb3[Any], sink: Sink, state: _Filters) -> None:
    """Record the block filter's new hashes in order; a hash whose lookup fails waits, with
    those after it, for the next poll (a failed lookup is not a missed notification)."""
    assert state.block is not None
    filter_id = state.block
    changes = await _changes(w3, sink, filter_id)
    if changes is None:
        state.block, state.unlooked = None, []  # a new filter is a new stream
        return
    state.unlooked += [hex_of(change) for change in changes]
    while state.unlooked:
        block_hash = state.unlooked[0]
        known = await _block(w3, sink, state, block_hash)
        if known is None:
            return
        del state.unlooked[0]
        sink.put(
            SubscriptionEvent(
                client="web3-filter",
                subscription=filter_id,
                kind=SubscriptionKind.HEADS,
                number=known[0],
                hash=block_hash,
                parent_hash=known[1],
                received_at=sink.clock.now(),
            )
        )


async def _poll_logs(w3: AsyncWeb3[Any], sink: Sink, state: _Filters) -> None:
    assert state.logs is not None
    filter_id = state.logs
    changes = await _changes(w3, sink, filter_id)
    if changes is None:
        state.logs = None
        return
    for log in changes:
        if not isinstance(log, Mapping):
            continue
        block_hash = hex_of(log["blockHash"])
        known = await _block(w3, sink, state, block_hash)
        sink.put(
            SubscriptionEvent(
                client="web3-filter",
                subscription=filter_id,
                kind=SubscriptionKind.LOGS,
                number=int_of(log["blockNumber"]),
                hash=block_hash,
                parent_hash=known[1] if known is not None else "",
                received_at=sink.clock.now(),
                removed=bool(log.get("removed", False)),
                log_index=int_of(log["logIndex"]),
            )
        )
