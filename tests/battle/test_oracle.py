"""The battle oracle's rules and the strategies' bounds, without a devnet."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from battle.chaindata import EMPTY_ADDRESSES, ChainData
from battle.oracle import judge, refused
from battle.params import SMALL, Sizes
from battle.strategies import METHODS, REFUSED, Drawn, all_methods, requests
from lasso.corpus import Answer, CorpusRequest

DATA = ChainData(
    block_hashes=tuple(f"0x{n:064x}" for n in range(7)),
    tx_hashes=(f"0x{0xAA:064x}",),
    tx_blocks=(2,),
    emitter="0x" + "e1" * 20,
    reverter="0x" + "e2" * 20,
    topic="0x" + "c0" * 32,
    log_block=4,
    funded=("0x" + "f3" * 20,),
    empty=EMPTY_ADDRESSES,
)


def single(method: str, params: str = "[]", rid: str = "1") -> Drawn:
    body = f'{{"jsonrpc":"2.0","id":{rid},"method":"{method}","params":{params}}}'.encode()
    return Drawn((CorpusRequest(method, method, body, json.loads(rid)),), body, batch=False)


def reply(payload: str, rid: str = "1") -> bytes:
    return f'{{"jsonrpc":"2.0","id":{rid},{payload}}}'.encode()


OK_BODY = reply('"result":"0x7"')
NODE = Answer(200, OK_BODY)


@pytest.mark.parametrize(
    ("lasso", "elapsed", "rule", "ok"),
    [
        (Answer(200, OK_BODY), 0.01, "node's answer", True),
        (Answer(502, OK_BODY), 0.01, "sound HTTP", False),
        (Answer(200, b"<html>bad gateway</html>"), 0.01, "sound HTTP", False),
        (Answer(200, OK_BODY), 2.5, "in time", False),  # eth_blockNumber: 1 s deadline
        (Answer(200, reply('"result":"0x7"', rid="2")), 0.01, "node's answer", False),
        (Answer(200, reply('"result":"0x8"')), 0.01, "node's answer", False),
    ],
)
def test_the_oracle_fails_a_broken_gateway(
    lasso: Answer, elapsed: float, rule: str, ok: bool
) -> None:
    verdict = judge(single("eth_blockNumber"), lasso, elapsed, NODE, None)
    assert (verdict.rule, verdict.ok) == (rule, ok), str(verdict)
    if not ok:
        assert "FAIL" in str(verdict) and "lasso:" in str(verdict)


def test_a_refused_method_must_be_an_error_with_the_clients_id() -> None:
    drawn = single("anvil_mine", rid='"x"')
    assert refused(drawn) and refused(single("eth_sendTransaction"))
    assert not refused(single("eth_call"))
    error = reply('"error":{"code":-32601,"message":"no"}', rid='"x"')
    assert judge(drawn, Answer(200, error), 0.01, None, None).ok
    assert not judge(drawn, Answer(200, reply('"result":"0x1"', '"x"')), 0.01, None, None).ok
    assert not judge(drawn, Answer(200, error.replace(b'"x"', b"null")), 0.01, None, None).ok


def test_the_gateways_own_envelope_errors_need_only_the_nodes_code() -> None:
    drawn = single("eth_call", params="5")
    node = Answer(200, reply('"error":{"code":-32602,"message":"invalid type: integer"}'))
    words = "Invalid Request: params must be an array or an object"
    lasso = Answer(400, reply(f'"error":{{"code":-32600,"message":"{words}"}}'))
    assert judge(drawn, lasso, 0.01, node, None).rule == "envelope check"
    other = Answer(200, reply('"error":{"code":-32000,"message":"x"}'))
    assert not judge(drawn, lasso, 0.01, other, None).ok


def test_non_deterministic_methods_keep_shape_and_error_class() -> None:
    drawn = single("eth_gasPrice")
    assert judge(drawn, Answer(200, reply('"result":"0x9"')), 0.01, NODE, None).ok
    reshaped = Answer(200, reply('"result":9'))
    assert not judge(drawn, reshaped, 0.01, NODE, None).ok
    node_error = Answer(200, reply('"error":{"code":-32602,"message":"bad params"}'))
    failure = Answer(200, reply('"error":{"code":-32603,"message":"internal error"}'))
    verdict = judge(drawn, failure, 0.01, node_error, None)
    assert (verdict.ok, verdict.rule) == (False, "same error class"), str(verdict)


def test_a_batch_names_the_item_that_differs() -> None:
    first, second = single("eth_blockNumber"), single("eth_chainId", rid="2")
    body = b"[" + first.body + b"," + second.body + b"]"
    drawn = Drawn(first.requests + second.requests, body, batch=True)
    node = Answer(200, b"[" + OK_BODY + b"," + reply('"result":"0x7a69"', "2") + b"]")
    assert judge(drawn, node, 0.01, node, None).ok
    lasso = Answer(200, b"[" + OK_BODY + b"," + reply('"result":"0x1"', "2") + b"]")
    verdict = judge(drawn, lasso, 0.01, node, None)
    assert not verdict.ok and verdict.reason.startswith("eth_chainId")


def test_at_least_40_methods_and_the_refused_ones_are_apart() -> None:
    assert len(all_methods()) >= 40
    assert not set(METHODS) & set(REFUSED)


@pytest.mark.slow
@settings(max_examples=200)
@given(requests(DATA))
def test_drawn_bodies_are_json_and_bounded(drawn: Drawn) -> None:
    json.loads(drawn.body)
    assert len(drawn.body) < 7 * (SMALL.max_string * 2 + 4096)
    if drawn.batch:
        assert len(drawn.requests) <= 6


def test_big_sizes_reach_a_megabyte() -> None:
    assert Sizes.big().max_string == 1_000_000


def test_a_volatile_method_may_answer_as_the_node_does_over_websocket() -> None:
    # Found by the fuzz phase (seed 29635): anvil answers net_peerCount [2**70] with
    # -32601 over HTTP but -32602 over WebSocket; Lasso forwarded it over WebSocket.
    drawn = single("net_peerCount", "[1180591620717411303424]", rid="0")
    http = Answer(200, reply('"error":{"code":-32601,"message":"Method not found"}', rid="0"))
    ws_error = '"error":{"code":-32602,"message":"invalid type: integer as u128"}'
    ws = Answer(None, reply(ws_error, rid="0"))
    lasso = Answer(200, reply(ws_error, rid="0"))
    assert judge(drawn, lasso, 0.01, http, ws).ok
    assert not judge(drawn, lasso, 0.01, http, None).ok


def test_a_batch_past_the_nodes_http_limit_is_judged_against_its_websocket_answer() -> None:
    # Found by the fuzz phase with 1 MB strings (seed 4242): anvil refuses a ~2 MB body
    # whole over HTTP (one -32600, id null) and answers it item by item over WebSocket.
    items = tuple(
        CorpusRequest("eth_chainId", "eth_chainId", b'{"method":"eth_chainId"}', i) for i in (1, 2)
    )
    drawn = Drawn(items, b"[" + b",".join(r.body for r in items) + b"]", batch=True)
    whole = Answer(200, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}')
    each = b'[{"jsonrpc":"2.0","id":1,"result":"0x7"},{"jsonrpc":"2.0","id":2,"result":"0x7"}]'
    assert judge(drawn, Answer(200, each), 0.01, whole, Answer(None, each)).ok
    wrong = each.replace(b'"0x7"}]', b'"0x8"}]')
    assert not judge(drawn, Answer(200, wrong), 0.01, whole, Answer(None, each)).ok
