"""The raw workload: answer classification, the method mix, arrivals, events (pure); the driver on
a MockClock; WebSocket reconnects and timeouts on a fake loopback gateway; the log-traffic maker."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from battle.answers import classify, hex_number, provider_from_meta
from battle.chaindata import ChainData
from battle.clients import WS_ERRORS, Endpoint, Reply, WsClient, connect_ws, meta_url
from battle.events import Outcome, Recorder, SubscriptionKind
from battle.scenario import Arrival, Rate
from battle.subscribers import (
    LOG_SENDER,
    make_log_traffic,
    notification,
    run_subscribers,
    subscribe_params,
)
from battle.workload import (
    REVERT_CODE,
    Call,
    Drive,
    arrivals,
    choose_call,
    drive,
    next_id,
    run_requests,
    to_event,
)
from lasso.devnet import DevnetError

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
    failed = {"attempts": [{"provider": "n0"}, {"provider": "n1", "category": "jsonrpc"}]}
    header = base64.urlsafe_b64encode(json.dumps(failed).encode()).rstrip(b"=").decode()
    assert provider_from_meta(header) == "n1"
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


async def test_a_late_answer_to_a_timed_out_ws_request_is_dropped() -> None:
    client = WsClient("ws://unused")
    client._ws = FakeWs()  # type: ignore[assignment]
    with trio.move_on_after(0):
        await client.send(b'{"id": 5}', 5)  # never answered: given up on
    waiting_send, waiting = trio.open_memory_channel[Reply | None](1)
    client._pending[("int", 6)] = waiting_send
    client._deliver(body({"jsonrpc": "2.0", "id": 5, "result": "0x1"}))  # late, for 5
    with pytest.raises(trio.WouldBlock):
        waiting.receive_nowait()  # not taken for a stray answer to 6
    client._deliver(body({"jsonrpc": "2.0", "id": 5, "result": "0x1"}))  # a second one is stray
    reply = waiting.receive_nowait()
    assert reply is not None and json.loads(reply.body)["id"] == 5


class FakeWs:
    async def send_message(self, message: str) -> None:
        pass


async def test_ws_requests_pending_when_the_connection_drops_get_no_answer() -> None:
    client = WsClient("ws://unused")
    send, receive = trio.open_memory_channel[Reply | None](1)
    client._pending[("int", 4)] = send
    client._fail_pending()
    assert receive.receive_nowait() is None and client._pending == {}


# --- reconnecting over a real loopback WebSocket ------------------------------------------------


class FakeGateway:
    """A WebSocket server on port 0 that answers ``eth_blockNumber`` and ``eth_subscribe``.

    ``drop_after`` answers per connection, then the connection is closed; ``silent`` never
    answers; each subscription sends two heads (numbers from ``next_head``) then holds.
    """

    def __init__(self, *, drop_after: int | None = None, silent: bool = False) -> None:
        self.drop_after, self.silent = drop_after, silent
        self.connections = 0
        self.next_head = 1
        self.url = ""

    async def handler(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        self.connections += 1
        answered = 0
        try:
            while self.drop_after is None or answered < self.drop_after:
                message = json.loads(await ws.get_message())
                if self.silent:
                    continue
                answered += 1
                if message["method"] == "eth_subscribe":
                    sub = f"0xs{self.connections}"
                    await ws.send_message(
                        json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": sub})
                    )
                    for _ in range(2):
                        n = self.next_head
                        self.next_head += 1
                        head = {"number": hex(n), "hash": f"0xh{n}", "parentHash": f"0xh{n - 1}"}
                        await ws.send_message(frame(sub, head).decode())
                else:
                    await ws.send_message(
                        json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": "0x10"})
                    )
            await ws.aclose()
        except ConnectionClosed:
            pass


async def serve_fake(nursery: trio.Nursery, fake: FakeGateway) -> Endpoint:
    server = await nursery.start(serve_websocket, fake.handler, "127.0.0.1", 0, None)
    fake.url = f"ws://127.0.0.1:{server.port}"
    return Endpoint("http://127.0.0.1:9/unused", fake.url, "fake")


@pytest.mark.slow
async def test_the_ws_client_reconnects_when_the_gateway_drops_it(nursery: trio.Nursery) -> None:
    fake = FakeGateway(drop_after=2)
    endpoint = await serve_fake(nursery, fake)
    recorder = Recorder()
    rate = Rate(20, Arrival.CONSTANT)
    with trio.fail_after(10):
        stats = await run_requests(
            endpoint, recorder, rate, 0.5, None, random.Random(0), ws_share=1.0
        )
    events = recorder.recording().requests
    assert stats.sent == len(events) and stats.sent + stats.skipped == 10
    assert stats.sent >= 5  # a loaded box may drop a late arrival or two, not most
    assert all(e.transport == "ws" and e.client == "raw-ws-1" for e in events)
    assert fake.connections >= 2  # two answers per connection
    answered = [e for e in events if e.outcome is Outcome.RESULT]
    assert len(answered) > 2 and all(e.received_id == e.sent_id for e in answered)
    lost = [e for e in events if e.outcome is not Outcome.RESULT]  # sent as the gateway hung up
    assert all(e.outcome is Outcome.TIMEOUT and e.answered_at is None for e in lost)


@pytest.mark.slow
async def test_an_unanswered_request_is_a_timeout_and_inflight_is_bounded(
    nursery: trio.Nursery,
) -> None:
    endpoint = await serve_fake(nursery, FakeGateway(silent=True))
    recorder = Recorder()
    with trio.fail_after(10):
        stats = await run_requests(
            endpoint,
            recorder,
            Rate(100, Arrival.CONSTANT),
            0.1,
            None,
            random.Random(0),
            ws_share=1.0,
            deadline_s=0.2,
            max_inflight=4,
        )
    events = recorder.recording().requests
    assert 1 <= stats.sent <= 4 and stats.sent + stats.skipped == 10
    assert [e.outcome for e in events] == [Outcome.TIMEOUT] * stats.sent
    assert all(e.answered_at is None and e.received_id is None for e in events)


async def test_a_subscriber_resubscribes_after_a_drop(nursery: trio.Nursery) -> None:
    fake = FakeGateway(drop_after=1)  # the subscribe call, two heads, then closed
    endpoint = await serve_fake(nursery, fake)
    recorder = Recorder()
    with trio.fail_after(10):
        while len(recorder.recording().subscriptions) < 6:
            with trio.move_on_after(0.05):
                await run_subscribers(endpoint, recorder, 5.0, None)
    events = recorder.recording().subscriptions
    assert {e.client for e in events} == {"sub-heads-1"}
    assert [e.number for e in events[:6]] == [1, 2, 3, 4, 5, 6]
    assert len({e.subscription for e in events}) >= 3  # a new id per connection


# --- the driver on virtual time -------------------------------------------------------------


class FakeTransport:
    """Answers ``eth_blockNumber`` with a rising head after ``delay_s`` virtual seconds; records
    what was sent. ``hog_s`` jumps the clock on each send (a box too busy to keep the rate)."""

    def __init__(
        self, clock: trio.testing.MockClock, delay_s: float = 0.01, hog_s: float = 0.0
    ) -> None:
        self.clock, self.delay_s, self.hog_s = clock, delay_s, hog_s
        self.sent: list[dict[str, Any]] = []
        self.head = 100

    async def send(self, body_bytes: bytes, sent_id: Any) -> Reply | None:
        self.sent.append(json.loads(body_bytes))
        self.clock.jump(self.hog_s)
        await trio.sleep(self.delay_s)
        self.head += 1
        answer = {"jsonrpc": "2.0", "id": sent_id, "result": hex(self.head)}
        if json.loads(body_bytes)["method"] == "eth_getBlockByNumber":
            answer["result"] = {"number": hex(self.head), "hash": "0x"}
        return Reply(200, body(answer), "p1", trio.current_time())


async def test_drive_sends_on_schedule_and_records_heads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    http, ws = FakeTransport(autojump_clock), FakeTransport(autojump_clock)
    recorder = Recorder()
    stats = await drive(
        Drive("s"), http, ws, recorder, Rate(10, Arrival.CONSTANT), 1.0, None, random.Random(4)
    )
    events = recorder.recording().requests
    assert (stats.sent, stats.skipped, stats.inflight) == (10, 0, 0)
    assert [e.sent_at for e in sorted(events, key=lambda e: e.sent_at)] == pytest.approx(
        [n / 10 for n in range(10)]
    )
    assert all(e.answered_at == pytest.approx(e.sent_at + 0.01) for e in events)
    assert len(http.sent) + len(ws.sent) == 10 and http.sent and ws.sent
    heads = recorder.recording().heads
    assert heads and {h.client for h in heads} <= {"raw-http-1", "raw-ws-1"}
    assert stats.heads == {
        c: max(h.number for h in heads if h.client == c) for c in {h.client for h in heads}
    }


async def test_drive_times_out_a_hang_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hung = FakeTransport(autojump_clock, delay_s=60)
    recorder = Recorder()
    how = Drive("s", deadline_s=2.0, ws_share=1.0)
    stats = await drive(
        how, hung, hung, recorder, Rate(2, Arrival.CONSTANT), 1.0, None, random.Random(0)
    )
    events = recorder.recording().requests
    assert stats.sent == 2 and [e.outcome for e in events] == [Outcome.TIMEOUT] * 2
    assert trio.current_time() == pytest.approx(0.5 + 2.0)  # the last one's deadline


async def test_drive_skips_arrivals_while_max_inflight_are_unanswered(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hung = FakeTransport(autojump_clock, delay_s=60)
    how = Drive("s", deadline_s=5.0, max_inflight=3)
    stats = await drive(
        how, hung, hung, Recorder(), Rate(10, Arrival.CONSTANT), 1.0, None, random.Random(0)
    )
    assert (stats.sent, stats.skipped) == (3, 7)


class HogRandom(random.Random):
    """Every draw costs ``cost_s`` of virtual time: a box too busy to keep the rate."""

    def __init__(self, clock: trio.testing.MockClock, cost_s: float) -> None:
        super().__init__(0)
        self.clock, self.cost_s = clock, cost_s

    def random(self) -> float:
        self.clock.jump(self.cost_s)
        return super().random()


async def test_drive_never_sends_past_the_window_on_a_busy_box(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport(autojump_clock)
    rng = HogRandom(autojump_clock, 0.1)
    recorder = Recorder()
    stats = await drive(
        Drive("s"), fake, fake, recorder, Rate(10, Arrival.CONSTANT), 1.0, None, rng
    )
    assert stats.sent + stats.skipped == 10
    assert 0 < stats.sent < 10  # the late arrivals were dropped, not sent after the window
    assert len(recorder.recording().requests) == stats.sent


async def test_connect_ws_gives_the_callers_own_error_back_unwrapped(nursery: trio.Nursery) -> None:
    endpoint = await serve_fake(nursery, FakeGateway())
    with pytest.raises(KeyError):
        async with connect_ws(endpoint.ws_url):
            raise KeyError("mine")


async def test_connect_ws_turns_a_refused_connection_into_ws_lost() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(WS_ERRORS):
        async with connect_ws(f"ws://127.0.0.1:{port}/"):
            pass


# --- the log-traffic maker --------------------------------------------------------------------


class FakeDevnet:
    """Mines a block every second of virtual time; a send fails on the blocks in ``failing``."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.height = 0
        self.mined = trio.Event()
        self.signed: list[dict[str, Any]] = []
        self.sent: list[tuple[int, str]] = []

    async def miner(self) -> None:
        while True:
            await trio.sleep(1.0)
            self.height += 1
            self.mined.set()
            self.mined = trio.Event()

    def statistics(self) -> Any:
        return type("Stats", (), {"blocks_mined": self.height})()

    async def sign_transfer(self, **fields: Any) -> str:
        self.signed.append(fields)
        return f"raw-{len(self.signed)}"

    async def send_raw_transaction(self, raw: str) -> str:
        if self.height in self.failing:
            raise DevnetError("nodes disagreed on a transaction")
        self.sent.append((self.height, raw))
        return "0xhash"

    async def wait_for_block(self, number: int) -> None:
        while self.height < number:
            await self.mined.wait()


async def test_log_traffic_sends_one_emitter_call_per_block(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    devnet = FakeDevnet(failing={2})
    nursery.start_soon(devnet.miner)
    await make_log_traffic(devnet, "0xemitter", 5.5)  # type: ignore[arg-type]
    assert trio.current_time() == pytest.approx(5.5)
    assert [height for height, _ in devnet.sent] == [0, 1, 3, 4, 5]  # block 2's failed: skipped
    assert all(f["to"] == "0xemitter" and f["value_wei"] == 0 for f in devnet.signed)
    assert {f["sender"] for f in devnet.signed} == {LOG_SENDER}
