"""The JSON-RPC wire core: parsing, id splicing, batch assembly."""

from __future__ import annotations

import json

import pytest

from lasso.core import jsonrpc
from lasso.core.jsonrpc import BadItem, Call, MalformedReply
from lasso.errors import InvalidRequest, ParseError

PARSE_CASES = [
    (
        b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}',
        Call("eth_blockNumber", b"[]", b"1"),
    ),
    (b'{"jsonrpc":"2.0","id":"abc","method":"m"}', Call("m", b"", b'"abc"')),
    (b'{"jsonrpc":"2.0","id":null,"method":"m","params":{"a":1}}', Call("m", b'{"a":1}', b"null")),
    (b'{"jsonrpc":"2.0","method":"m","params":[1]}', Call("m", b"[1]", None)),
    (b'  {"method":"m","jsonrpc":"2.0","id":-7,"extra":true}', Call("m", b"", b"-7")),
    (b'{"jsonrpc":"2.0","id":1.5e3,"method":"m"}', Call("m", b"", b"1.5e3")),
]


@pytest.mark.parametrize(("body", "expected"), PARSE_CASES)
def test_parse_single(body: bytes, expected: Call) -> None:
    assert jsonrpc.parse_body(body, max_batch=50) == expected


ERROR_CASES = [
    (b"", ParseError),
    (b"{", ParseError),
    (b"not json", ParseError),
    (b'{"jsonrpc":"2.0","id":1,"method":"m"', ParseError),
    (b"[1,", ParseError),
    (b"[]", InvalidRequest),
    (b"1", InvalidRequest),
    (b'"x"', InvalidRequest),
    (b"null", InvalidRequest),
    (b'{"jsonrpc":"2.0","id":1,"method":5}', InvalidRequest),
    (b'{"jsonrpc":"2.0","id":1}', InvalidRequest),
    (b'{"jsonrpc":"1.0","id":1,"method":"m"}', InvalidRequest),
    (b'{"id":1,"method":"m"}', InvalidRequest),
    (b'{"jsonrpc":"2.0","id":{},"method":"m"}', InvalidRequest),
    (b'{"jsonrpc":"2.0","id":true,"method":"m"}', InvalidRequest),
    (b'{"jsonrpc":"2.0","id":1,"method":"m","params":3}', InvalidRequest),
]


@pytest.mark.parametrize(("body", "error"), ERROR_CASES)
def test_parse_errors(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        jsonrpc.parse_body(body, max_batch=50)
    assert type(info.value) is error


def test_batch_keeps_order_and_answers_bad_items_in_place() -> None:
    body = (
        b'[{"jsonrpc":"2.0","id":1,"method":"a"},'
        b'{"jsonrpc":"2.0","id":2,"method":7},'
        b"42,"
        b'{"jsonrpc":"2.0","method":"notify"}]'
    )
    items = jsonrpc.parse_body(body, max_batch=50)
    assert isinstance(items, list)
    assert items[0] == Call("a", b"", b"1")
    assert isinstance(items[1], BadItem) and items[1].id == b"2"
    assert isinstance(items[2], BadItem) and items[2].id == b"null"
    assert items[3] == Call("notify", b"", None)


def test_batch_limit() -> None:
    item = b'{"jsonrpc":"2.0","id":1,"method":"m"}'
    assert len(jsonrpc.parse_body(b"[" + b",".join([item] * 3) + b"]", max_batch=3)) == 3  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="batch too large"):
        jsonrpc.parse_body(b"[" + b",".join([item] * 4) + b"]", max_batch=3)


def test_encode_upstream_uses_private_id_and_raw_params() -> None:
    body = jsonrpc.encode_upstream("eth_getBalance", b'["0xabc", "latest"]', 42)
    assert json.loads(body) == {
        "jsonrpc": "2.0",
        "id": 42,
        "method": "eth_getBalance",
        "params": ["0xabc", "latest"],
    }


def test_result_passes_through_as_bytes_with_client_id() -> None:
    upstream = b'{"jsonrpc":"2.0","id":7,"result":{"b":  1, "a" : [1,2]}}'
    reply = jsonrpc.decode_reply(upstream, 7)
    assert reply.result == b'{"b":  1, "a" : [1,2]}'  # the provider's exact bytes
    answer = jsonrpc.result_body(b'"client-x"', reply.result)
    assert answer == b'{"jsonrpc":"2.0","id":"client-x","result":{"b":  1, "a" : [1,2]}}'


def test_error_reply_is_decoded_and_kept_raw() -> None:
    upstream = b'{"jsonrpc":"2.0","id":3,"error":{"code":3,"message":"execution reverted","data":"0x08c379a0"}}'
    reply = jsonrpc.decode_reply(upstream, 3)
    assert reply.error is not None and reply.error.code == 3
    assert reply.raw_error == b'{"code":3,"message":"execution reverted","data":"0x08c379a0"}'
    assert jsonrpc.raw_error_body(b"9", reply.raw_error).startswith(b'{"jsonrpc":"2.0","id":9,')


@pytest.mark.parametrize(
    "upstream",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"jsonrpc":"2.0","id":8,"result":"0x1"}',  # wrong id
        b'{"jsonrpc":"2.0","id":"7","result":"0x1"}',  # right value, wrong type
        b'{"jsonrpc":"2.0","id":7}',  # neither result nor error
        b'{"jsonrpc":"2.0","id":7,"result":"0x1',  # truncated
        b'[{"jsonrpc":"2.0","id":7,"result":"0x1"}]',  # a batch
        b'{"jsonrpc":"2.0","id":7,"error":{"message":"no code"}}',
    ],
)
def test_malformed_replies(upstream: bytes) -> None:
    with pytest.raises(MalformedReply):
        jsonrpc.decode_reply(upstream, 7)


def test_null_result_is_a_result() -> None:
    assert jsonrpc.decode_reply(b'{"jsonrpc":"2.0","id":1,"result":null}', 1).result == b"null"


def test_error_body_and_members() -> None:
    body = jsonrpc.error_body(None, -32601, "nope", {"websocket_url": "/ws/rpc/x"})
    assert json.loads(body) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32601, "message": "nope", "data": {"websocket_url": "/ws/rpc/x"}},
    }
    assert json.loads(jsonrpc.with_member(b'{"a":1}', "lasso_meta", {"x": 2})) == {
        "a": 1,
        "lasso_meta": {"x": 2},
    }
    assert jsonrpc.batch_body([b"1", b"2"]) == b"[1,2]"


def test_a_null_error_beside_a_result_is_no_error() -> None:
    reply = jsonrpc.decode_reply(b'{"jsonrpc":"2.0","id":1,"result":"0x1","error":null}', 1)
    assert reply.result == b'"0x1"'
    assert reply.error is None


# --- hostile bodies: ids kept, depth bounded, bad UTF-8 refused (issue 7, items 2, 3, 13) ----

ID_KEPT_CASES = [
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":"x"}',
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":5}',
    b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":true}',
    b'{"jsonrpc":"1.0","id":7,"method":"eth_blockNumber","params":[]}',
    b'{"id":7,"method":"eth_blockNumber","params":[]}',
    b'{"jsonrpc":"2.0","id":7,"method":5,"params":[]}',
    b'{"jsonrpc":"2.0","id":7,"params":[]}',
]


@pytest.mark.parametrize("body", ID_KEPT_CASES)
def test_an_invalid_request_with_a_readable_id_keeps_it(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        jsonrpc.parse_body(body, max_batch=50)
    assert info.value.reply_id == b"7"
    items = jsonrpc.parse_body(b"[" + body + b"]", max_batch=50)
    assert isinstance(items, list) and isinstance(items[0], BadItem) and items[0].id == b"7"


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":{},"method":"m"}',
        b'{"jsonrpc":"2.0","id":[7],"method":"m"}',
        b'{"jsonrpc":"2.0","id":"\xff","method":"m"}',
        b'{"jsonrpc":"2.0","id":7,"method":"m"',
    ],
)
def test_an_unreadable_id_is_null(body: bytes) -> None:
    with pytest.raises((InvalidRequest, ParseError)) as info:
        jsonrpc.parse_body(body, max_batch=50)
    assert info.value.reply_id is None


def test_absent_and_null_params_are_forwarded_as_written() -> None:
    """A node words a missing argument differently for absent and null params: keep both."""
    body = b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber","params":null}'
    assert jsonrpc.parse_body(body, max_batch=50) == Call("eth_blockNumber", b"null", b"7")
    assert jsonrpc.encode_upstream("eth_blockNumber", b"null", 3) == (
        b'{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber","params":null}'
    )
    body = b'{"jsonrpc":"2.0","id":7,"method":"eth_blockNumber"}'
    assert jsonrpc.parse_body(body, max_batch=50) == Call("eth_blockNumber", b"", b"7")
    assert jsonrpc.encode_upstream("eth_blockNumber", b"", 3) == (
        b'{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber"}'
    )


@pytest.mark.parametrize(
    ("written", "echoed"),
    [
        (rb'"\u00e9t\u00e9"', '"été"'.encode()),
        (rb'"a\/b"', b'"a/b"'),
        (rb'"q\"uote"', rb'"q\"uote"'),
        (rb'"\u001f"', rb'"\u001f"'),
        (b'"plain"', b'"plain"'),
        (b"1.5e3", b"1.5e3"),
    ],
)
def test_a_string_id_comes_back_as_a_node_writes_it(written: bytes, echoed: bytes) -> None:
    body = b'{"jsonrpc":"2.0","id":%b,"method":"m","params":[]}' % written
    call = jsonrpc.parse_body(body, max_batch=50)
    assert isinstance(call, Call)
    assert call.id == echoed


def nested_call(depth: int, rid: bytes = b"7") -> bytes:
    params = b"[" * depth + b"]" * depth
    return b'{"jsonrpc":"2.0","id":%b,"method":"eth_call","params":%b}' % (rid, params)


def test_params_deeper_than_the_limit_are_refused_with_the_id() -> None:
    assert isinstance(jsonrpc.parse_body(nested_call(64), max_batch=50), Call)
    with pytest.raises(InvalidRequest, match="nested deeper than 64") as info:
        jsonrpc.parse_body(nested_call(65), max_batch=50)
    assert info.value.reply_id == b"7"
    assert isinstance(jsonrpc.parse_body(nested_call(65), max_batch=50, max_depth=512), Call)


@pytest.mark.parametrize("depth", [990, 1000, 5000, 200_000])
def test_absurd_nesting_is_an_invalid_request_never_a_crash(depth: int) -> None:
    with pytest.raises(InvalidRequest, match="nested deeper") as info:
        jsonrpc.parse_body(nested_call(depth), max_batch=50)
    assert info.value.reply_id == b"7"


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("body", "rid"),
    [
        (b'{"method":"eth_call","params":%b,"id":"ab","jsonrpc":"2.0"}' % DEEP, b'"ab"'),
        (b'{"method":"eth_call","params":%b,"id":42}' % DEEP, b"42"),
        (b' { "jsonrpc" : "2.0" , "id" : -1.5e3 , "params":%b}' % DEEP, b"-1.5e3"),
        (b'{"method":"m","params":[%b,{"id":42}]}' % DEEP, None),
        (b'{"params":%b,"x":{"id":42}}' % DEEP, None),
        (b'{"params":[{"id":5},%b]}' % DEEP, None),
        (b'{"params":%b,"id":"\xff"}' % DEEP, None),
    ],
)
def test_beyond_the_decoder_the_id_is_read_only_where_it_is_surely_top_level(
    body: bytes, rid: bytes | None
) -> None:
    with pytest.raises((InvalidRequest, ParseError)) as info:
        jsonrpc.parse_body(body, max_batch=50)
    assert info.value.reply_id == rid


def test_a_deep_batch_item_is_answered_alone() -> None:
    body = b"[" + nested_call(100) + b"," + nested_call(1, b"8") + b"]"
    items = jsonrpc.parse_body(body, max_batch=50)
    assert isinstance(items, list)
    assert isinstance(items[0], BadItem) and items[0].id == b"7"
    assert items[1] == Call("eth_call", b"[]", b"8")


def test_a_batch_too_deep_to_split_is_refused_whole() -> None:
    body = b"[" + nested_call(5000) + b"," + nested_call(1, b"8") + b"]"
    with pytest.raises(InvalidRequest, match="nested deeper"):
        jsonrpc.parse_body(body, max_batch=50)


def test_brackets_inside_strings_do_not_count() -> None:
    body = b'{"jsonrpc":"2.0","id":7,"method":"m","params":["' + b"[" * 500 + b'"]}'
    assert isinstance(jsonrpc.parse_body(body, max_batch=50), Call)


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":7,"method":"eth_\xff","params":[]}',
        b'{"jsonrpc":"2.0","id":7,"method":"eth_getBalance","params":["\xff"]}',
        b'{"jsonrpc":"2.0","method":"eth_\xc3","id":7}',
    ],
)
def test_invalid_utf8_is_a_parse_error_with_the_readable_id(body: bytes) -> None:
    with pytest.raises(ParseError, match="UTF-8") as info:
        jsonrpc.parse_body(body, max_batch=50)
    assert info.value.reply_id == b"7"
    items = jsonrpc.parse_body(b"[" + body + b"]", max_batch=50)
    assert isinstance(items, list) and isinstance(items[0], BadItem) and items[0].id == b"7"


def test_a_null_id_unreadable_request_error_answers_our_request() -> None:
    for code in (-32700, -32600):
        body = b'{"jsonrpc":"2.0","id":null,"error":{"code":%d,"message":"Invalid request"}}' % code
        reply = jsonrpc.decode_reply(body, 5)
        assert reply.error is not None and reply.error.code == code
        assert reply.raw_error == b'{"code":%d,"message":"Invalid request"}' % code
    other = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"x"}}'
    with pytest.raises(MalformedReply):
        jsonrpc.decode_reply(other, 5)
    with pytest.raises(MalformedReply):
        jsonrpc.decode_reply(b'{"jsonrpc":"2.0","id":null,"result":"0x1"}', 5)


def test_invalid_utf8_from_upstream_is_a_malformed_reply() -> None:
    for body in (
        b'{"jsonrpc":"2.0","id":5,"error":{"code":-32000,"message":"\xff"}}',
        b'{"jsonrpc":"2.0","id":"\xff","result":"0x1"}',
    ):
        with pytest.raises(MalformedReply):
            jsonrpc.decode_reply(body, 5)
