"""The RESP2 codec: every reply shape, fed in any pieces; any bytes parse or raise ours."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lasso.shared.resp import (
    INCOMPLETE,
    MAX_DEPTH,
    ProtocolError,
    Reply,
    ReplyError,
    ReplyParser,
    encode,
)


def wire(reply: Reply) -> bytes:
    """The RESP2 bytes of ``reply`` (a test-side encoder; strings are simple strings)."""
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, ReplyError):
        return b"-" + str(reply).encode() + b"\r\n"
    if isinstance(reply, str):
        return b"+" + reply.encode() + b"\r\n"
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    return b"*%d\r\n" % len(reply) + b"".join(wire(item) for item in reply)


def same(a: Reply, b: Reply) -> bool:
    if isinstance(a, ReplyError) or isinstance(b, ReplyError):
        return type(a) is type(b) and str(a) == str(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


line_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)
leaves = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=40),
    line_text,
    line_text.map(lambda text: ReplyError("ERR " + text)),
)
replies = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


def test_encode_is_an_array_of_bulk_strings() -> None:
    assert encode("SET", b"k\r\n", 5) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n"


def test_each_shape() -> None:
    parser = ReplyParser()
    parser.feed(
        b"+OK\r\n-NOSCRIPT No matching\r\n:-12\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n:1\r\n*-1\r\n"
    )
    assert parser.next() == "OK"
    error = parser.next()
    assert isinstance(error, ReplyError) and error.code == "NOSCRIPT"
    assert parser.next() == -12
    assert parser.next() == b"a\r\n"
    assert parser.next() is None
    assert parser.next() == [1, None]
    assert parser.next() is INCOMPLETE
    assert parser.buffered == 0


@given(st.lists(replies, min_size=1, max_size=4), st.data())
def test_any_replies_in_any_pieces(sent: list[Reply], data: st.DataObject) -> None:
    stream = b"".join(wire(reply) for reply in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = ReplyParser()
    got: list[Reply] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        parser.feed(stream[start:end])
        while (reply := parser.next()) is not INCOMPLETE:
            got.append(reply)  # type: ignore[arg-type]
    assert len(got) == len(sent) and all(same(a, b) for a, b in zip(got, sent, strict=True))
    assert parser.buffered == 0


@given(st.binary(max_size=200))
@example(b"HTTP/1.1 400 Bad Request\r\n")
@example(b"$99999999999\r\n")
@example(b"*-2\r\n")
@example(b"$3\r\nabcXY")
@example(b":1x\r\n")
@example(b"*1\r\n" * (MAX_DEPTH + 1))
def test_any_bytes_parse_wait_or_raise_ours(data: bytes) -> None:
    parser = ReplyParser()
    parser.feed(data)
    try:
        for _ in range(len(data) + 1):
            if parser.next() is INCOMPLETE:
                break
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    "data",
    [b"HTTP/1.1 200 OK\r\n", b"$-2\r\n", b"*1025\r\n", b":\r\n", b"$1\r\nab\r\n", b"+\xff\r\n"],
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    parser = ReplyParser()
    parser.feed(data)
    with pytest.raises(ProtocolError):
        parser.next()


def test_an_endless_line_is_refused_not_buffered() -> None:
    parser = ReplyParser()
    parser.feed(b"+" + b"x" * 70_000)
    with pytest.raises(ProtocolError):
        parser.next()
