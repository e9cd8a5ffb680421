"""The raw workload's pure parts: answer classification, the method mix, arrivals, events."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
import trio

from battle.answers import classify, hex_number, provider_from_meta
from battle.chaindata import ChainData
from battle.clients import Reply, WsClient, meta_url
from battle.events import Outcome, SubscriptionKind
from battle.scenario import Arrival, Rate
from battle.subscribers import notification, subscribe_params
from battle.workload import (
    REVERT_CODE,
    Call,
    arrivals,
    choose_call,
    next_id,
    to_event,
)

DATA = ChainData(
    block_hashes=tuple(f"0x{n:064x}" for n in range(8)),
    tx_hashes=("0x" + "aa" * 32, "0x" + "bb" * 32),
    tx_blocks=(2, 3),
    emitter="0x" + "e1" * 20,
    reverter="0x" + "de" * 20,
    topic="0x" + "c0" * 32,
    log_block=4,
    funded=("0x" + "f0" * 20,),
    empty=("0x" + "00" * 19 + "ee",),
)


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --- classification -------------------------------------------------------------------------


def test_a_result_keeps_its_id_and_value() -> None:
    answer = classify(200, body({"jsonrpc": "2.0", "id": "a-1", "result": "0x10"}))
    assert (answer.outcome, answer.received_id, answer.result) == (Outcome.RESULT, "a-1", "0x10")


def test_a_jsonrpc_error_keeps_its_code_even_under_a_5xx_status() -> None:
    error = {"jsonrpc": "2.0", "id": 7, "error": {"code": -32603, "message": "x"}}
    answer = classify(503, body(error))
    assert (answer.outcome, answer.received_id, answer.error_code) == (
        Outcome.JSONRPC_ERROR,
        7,
        -32603,
    )


def test_an_html_page_is_html_whatever_the_status() -> None:
    page = b"\n  <!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    assert classify(502, page).outcome is Outcome.HTML
    assert classify(200, b"<html><title>Error</title></html>").outcome is Outcome.HTML


def test_a_plain_text_502_is_5xx_and_plain_text_under_200_is_non_json() -> None:
    assert classify(502, b"502 Bad Gateway").outcome is Outcome.HTTP_5XX
    assert classify(200, b"502 Bad Gateway").outcome is Outcome.NON_JSON
    assert classify(None, b"").outcome is Outcome.NON_JSON


def test_truncated_json_is_non_json() -> None:
    assert classify(200, b'{"jsonrpc":"2.0","id":1,"resu').outcome is Outcome.NON_JSON


def test_an_id_mismatch_is_recorded_as_received() -> None:
    call = Call("eth_chainId", [])
    reply = Reply(200, body({"jsonrpc": "2.0", "id": 8, "result": "0x1"}), "n0", 1.5)
    event, _ = to_event("s", "raw-http-1", "http", call, 7, 1.0, reply)
    assert (event.sent_id, event.received_id, event.outcome) == (7, 8, Outcome.RESULT)
    assert event.provider == "n0" and event.answered_at == 1.5


def test_a_batch_answering_a_single_call_is_not_a_response() -> None:
    batch = body([{"jsonrpc": "2.0", "id": 1, "result": "0x1"}])
    assert classify(200, batch).outcome is Outcome.NON_JSON
    assert classify(500, batch).outcome is Outcome.HTTP_5XX


def test_json_that_is_no_response_is_non_json() -> None:
    assert classify(200, body({"jsonrpc": "2.0", "id": 1})).outcome is Outcome.NON_JSON
    assert classify(200, body("0x1")).outcome is Outcome.NON_JSON
    notification_frame = {"jsonrpc": "2.0", "method": "eth_subscription", "params": {}}
    assert classify(None, body(notification_frame)).outcome is Outcome.NON_JSON


def test_odd_ids_come_back_distinguishable() -> None:
    assert classify(200, body({"id": None, "result": 1})).received_id is None
    assert classify(200, body({"id": True, "result": 1})).received_id == "true"
    assert classify(200, body({"id": [1], "result": 1})).received_id == "[1]"


def test_the_provider_comes_from_the_meta_header() -> None:
    meta = {"selected_provider": {"id": "n2", "protocol": "http"}, "chain": "devnet"}
    header = base64.urlsafe_b64encode(json.dumps(meta).encode()).rstrip(b"=").decode()
    assert provider_from_meta(header) == "n2"
    batch = base64.urlsafe_b64encode(json.dumps([{"served_by": "lasso"}, meta]).encode())
    assert provider_from_meta(batch.rstrip(b"=")) == "n2"
    assert provider_from_meta(None) is None
    assert provider_from_meta("!!not base64") is None
    served_locally = base64.urlsafe_b64encode(b'{"served_by":"lasso"}').rstrip(b"=")
    assert provider_from_meta(served_locally) is None


def test_meta_url_appends_the_query() -> None:
    assert meta_url("http://h/rpc/x") == "http://h/rpc/x?include_meta=headers"
    assert meta_url("http://h/rpc/x?k=1") == "http://h/rpc/x?k=1&include_meta=headers"


def test_hex_number() -> None:
    assert hex_number("0x1a") == 26
    assert [hex_number(v) for v in ("1a", 26, None, "0xzz")] == [None, None, None, None]


# --- events ---------------------------------------------------------------------------------


def test_no_reply_is_a_timeout_with_no_answer_time() -> None:
    event, head = to_event("s", "c", "ws", Call("eth_blockNumber", []), "r-3", 2.0, None)
    assert (event.outcome, event.answered_at, event.http_status, head) == (
        Outcome.TIMEOUT,
        None,
        None,
        None,
    )
    assert event.sent_id == "r-3"


def test_block_number_and_latest_block_answers_are_heads() -> None:
    reply = Reply(200, body({"jsonrpc": "2.0", "id": 1, "result": "0x2a"}), "n1", 1.0)
    _, head = to_event(
        "s", "c", "http", Call("eth_blockNumber", [], reports_head=True), 1, 0, reply
    )
    assert head == 42
    block = body({"jsonrpc": "2.0", "id": 1, "result": {"number": "0x2b", "hash": "0x"}})
    latest = Call("eth_getBlockByNumber", ["latest", False], reports_head=True)
    _, head = to_event("s", "c", "ws", latest, 1, 0, Reply(None, block, None, 1.0))
    assert head == 43
    error = body({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "x"}})
    _, head = to_event("s", "c", "ws", latest, 1, 0, Reply(None, error, None, 1.0))
    assert head is None


def test_a_null_read_of_a_told_block_is_an_empty_result() -> None:
    call = Call("eth_getBlockByNumber", ["0x9", False], block=9)
    null = Reply(200, body({"jsonrpc": "2.0", "id": 1, "result": None}), "n0", 1.0)
    event, _ = to_event("s", "c", "http", call, 1, 0.5, null)
    assert (event.block, event.empty_result) == (9, True)
    found = Reply(200, body({"jsonrpc": "2.0", "id": 1, "result": {"number": "0x9"}}), "n0", 1)
    event, _ = to_event("s", "c", "http", call, 1, 0.5, found)
    assert (event.block, event.empty_result) == (9, False)


def test_empty_logs_are_no_read_your_head_miss() -> None:
    call = Call("eth_getLogs", [{}])
    reply = Reply(200, body({"jsonrpc": "2.0", "id": 1, "result": []}), "n0", 1.0)
    event, _ = to_event("s", "c", "http", call, 1, 0.5, reply)
    assert (event.block, event.empty_result) == (None, False)


def test_only_the_revert_code_is_an_expected_error() -> None:
    call = Call("eth_call", [{}], expect_error=REVERT_CODE)
    revert = {"jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "execution reverted"}}
    event, _ = to_event("s", "c", "http", call, 1, 0, Reply(200, body(revert), "n0", 1.0))
    assert event.error_expected
    other = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "no provider"}}
    event, _ = to_event("s", "c", "http", call, 1, 0, Reply(200, body(other), None, 1.0))
    assert not event.error_expected


# --- the mix, ids and arrivals --------------------------------------------------------------


def test_without_chain_data_the_mix_is_chain_agnostic() -> None:
    rng = random.Random(1)
    calls = [choose_call(rng, None, 100) for _ in range(500)]
    methods = {c.method for c in calls}
    assert methods == {"eth_blockNumber", "eth_chainId", "eth_getBlockByNumber", "eth_getBalance"}
    assert {c.params[0] for c in calls if c.method == "eth_getBalance"} == {"0x" + "00" * 20}


def test_with_chain_data_the_mix_covers_the_chain() -> None:
    rng = random.Random(2)
    calls = [choose_call(rng, DATA, 10) for _ in range(2000)]
    methods = {c.method for c in calls}
    assert methods >= {
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBalance",
        "eth_call",
        "eth_getLogs",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_chainId",
        "eth_getCode",
    }
    assert any(c.params == [DATA.funded[0], "0x1"] for c in calls)  # history
    reverts = [c for c in calls if c.expect_error is not None]
    assert reverts and all(c.params[0]["to"] == DATA.reverter for c in reverts)
    head_reads = [c for c in calls if c.block == 10 and c.method == "eth_getBlockByNumber"]
    assert head_reads and all(c.params[0] == "0xa" for c in head_reads)
    log_ranges = {c.params[0]["fromBlock"] for c in calls if c.method == "eth_getLogs"}
    assert log_ranges == {"0x8", "0x4"}


def test_the_mix_is_seeded() -> None:
    first = [choose_call(random.Random(5), DATA, None) for _ in range(1)]
    again = [choose_call(random.Random(5), DATA, None) for _ in range(1)]
    assert first == again


def test_before_any_head_no_read_of_a_head_is_made() -> None:
    rng = random.Random(3)
    calls = [choose_call(rng, None, None) for _ in range(300)]
    assert all(c.block is None for c in calls)


def test_ids_vary_and_never_repeat() -> None:
    ids = [next_id(n, "raw") for n in range(1, 200)]
    assert len({(type(i), i) for i in ids}) == len(ids)
    assert {type(i) for i in ids} == {int, str}
    assert any(isinstance(i, int) and i > 2**32 for i in ids)


def test_constant_arrivals_are_evenly_spaced() -> None:
    times = list(arrivals(Rate(20, Arrival.CONSTANT), 3.0, random.Random(0)))
    assert len(times) == 60
    assert times[0] == 0 and times[1] == pytest.approx(0.05) and times[-1] < 3.0


def test_poisson_arrivals_are_seeded_and_near_the_rate() -> None:
    rate = Rate(50, Arrival.POISSON)
    times = list(arrivals(rate, 20.0, random.Random(9)))
    assert times == list(arrivals(rate, 20.0, random.Random(9)))
    assert 900 < len(times) < 1100
    assert times == sorted(times) and times[-1] < 20.0
    assert list(arrivals(Rate(0), 5.0, random.Random(0))) == []


# --- subscription frames --------------------------------------------------------------------


def frame(subscription: str, result: Any) -> bytes:
    message = {"jsonrpc": "2.0", "method": "eth_subscription"}
    return body(message | {"params": {"subscription": subscription, "result": result}})


def test_a_head_notification() -> None:
    head = {"number": "0x5", "hash": "0xh5", "parentHash": "0xh4"}
    event = notification(frame("0xs", head), "sub-heads-1", "0xs", SubscriptionKind.HEADS, 3.0)
    assert event is not None
    assert (event.number, event.hash, event.parent_hash, event.received_at) == (
        5,
        "0xh5",
        "0xh4",
        3,
    )
    assert (event.subscription, event.removed, event.log_index) == ("0xs", False, None)


def test_a_log_notification() -> None:
    log = {"blockNumber": "0x7", "blockHash": "0xb7", "logIndex": "0x2", "removed": True}
    event = notification(frame("0xs", log), "sub-logs-1", "0xs", SubscriptionKind.LOGS, 1.0)
    assert event is not None
    assert (event.number, event.hash, event.log_index, event.removed) == (7, "0xb7", 2, True)


def test_other_frames_are_no_notification() -> None:
    head = {"number": "0x5", "hash": "0xh5", "parentHash": "0xh4"}
    heads = SubscriptionKind.HEADS
    assert notification(frame("0xother", head), "c", "0xs", heads, 1.0) is None
    assert notification(b"not json", "c", "0xs", heads, 1.0) is None
    assert notification(b"[1]", "c", "0xs", heads, 1.0) is None
    assert notification(body({"id": 1, "result": "0xs"}), "c", "0xs", heads, 1.0) is None
    assert notification(frame("0xs", {"number": "5"}), "c", "0xs", heads, 1.0) is None


def test_subscribe_params() -> None:
    assert subscribe_params(SubscriptionKind.HEADS, DATA) == ["newHeads"]
    assert subscribe_params(SubscriptionKind.LOGS, DATA) == ["logs", {"address": DATA.emitter}]
    assert subscribe_params(SubscriptionKind.LOGS, None) == ["logs", {}]


# --- WebSocket correlation --------------------------------------------------------------------


async def test_ws_answers_find_their_request_and_strays_the_oldest() -> None:
    client = WsClient("ws://unused")
    first_send, first = trio.open_memory_channel[Reply | None](1)
    second_send, second = trio.open_memory_channel[Reply | None](1)
    client._pending[("int", 1)] = first_send
    client._pending[("str", "1")] = second_send
    client._deliver(body({"jsonrpc": "2.0", "id": "1", "result": "0x2"}))
    reply = second.receive_nowait()
    assert reply is not None and json.loads(reply.body)["id"] == "1"
    client._deliver(b"garbage")
    reply = first.receive_nowait()
    assert reply is not None and reply.body == b"garbage"
    client._deliver(body({"jsonrpc": "2.0", "id": 9, "result": "0x2"}))  # nobody waits: dropped
    assert client._pending == {}


async def test_ws_requests_pending_when_the_connection_drops_get_no_answer() -> None:
    client = WsClient("ws://unused")
    send, receive = trio.open_memory_channel[Reply | None](1)
    client._pending[("int", 4)] = send
    client._fail_pending()
    assert receive.receive_nowait() is None and client._pending == {}
