"""The fast path's request parser against h11: it takes only what h11 takes, and reads
it the same way (lasso/core/http1.py).

For any bytes: when ``parse_head`` returns a head, h11 yields a request with the same
method, target, version and headers, and a body of exactly ``content_length`` bytes;
when it says INCOMPLETE, h11 needs more data too. DECLINED is always allowed (hypercorn
then answers), but the common, well-formed request must not be declined, or the fast
path would never run.
"""

from __future__ import annotations

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from lasso.core.http1 import (
    DECLINED,
    INCOMPLETE,
    MAX_HEAD,
    DateHeader,
    Head,
    parse_head,
    response_head,
)

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'


def h11_reading(data: bytes) -> object:
    """What h11 makes of ``data``: a (request, body) pair, "need data" or "error"."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    if data:  # receive_data(b"") would mean EOF to h11
        conn.receive_data(data)
    try:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return "need data"
        if not isinstance(event, h11.Request):
            return "error"
        body = b""
        while True:
            nxt = conn.next_event()
            if isinstance(nxt, h11.Data):
                body += nxt.data
            elif isinstance(nxt, h11.EndOfMessage):
                return event, body
            else:
                return event, None  # body incomplete
    except h11.RemoteProtocolError:
        return "error"


def check(data: bytes) -> Head | str:
    ours = parse_head(data)
    theirs = h11_reading(data)
    if isinstance(ours, Head):
        assert isinstance(theirs, tuple), (data, theirs)
        request, body = theirs
        assert request.method == ours.method
        assert request.target == ours.target
        assert request.http_version == b"1.1"
        assert list(request.headers) == ours.headers
        if len(data) >= ours.size + ours.content_length:
            assert body == data[ours.size : ours.size + ours.content_length]
    elif ours == INCOMPLETE:
        assert theirs == "need data", (data, theirs)
    else:
        assert ours == DECLINED
    return ours


def request(head_lines: list[bytes], body: bytes = BODY, eol: bytes = b"\r\n") -> bytes:
    return eol.join(head_lines) + eol + eol + body


def test_the_common_request_is_taken_and_read_as_h11_reads_it() -> None:
    data = request(
        [
            b"POST /rpc/devnet?include_meta=headers HTTP/1.1",
            b"Host: 127.0.0.1:4000",
            b"User-Agent: viem/2.0",
            b"Content-Type: application/json",
            b"Content-Length: %d" % len(BODY),
            b"Connection: keep-alive",
            b"X-Request-Id:  abc \t",
        ]
    )
    head = check(data)
    assert isinstance(head, Head)
    assert head.close is False
    assert (b"x-request-id", b"abc") in head.headers
    assert data[head.size :] == BODY


def test_connection_close_is_seen() -> None:
    data = request(
        [b"POST /rpc/x HTTP/1.1", b"Host: x", b"Connection: Close", b"Content-Length: 64"]
    )
    head = check(data)
    assert isinstance(head, Head) and head.close


def test_every_prefix_of_a_request_is_incomplete_until_its_head_ends() -> None:
    data = request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64"])
    end = data.index(b"\r\n\r\n") + 4
    for cut in range(end):
        assert check(data[:cut]) == INCOMPLETE
    assert isinstance(check(data[:end]), Head)


def test_what_h11_must_answer_is_declined() -> None:
    declined = [
        request([b"GET /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 0"], b""),
        request([b"POST /health HTTP/1.1", b"Host: x", b"Content-Length: 64"]),
        request([b"POST /rpc/x HTTP/1.0", b"Content-Length: 64"]),
        request([b"POST http://evil/rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64"]),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Transfer-Encoding: chunked"]),
        request(
            [b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64", b"Expect: 100-continue"]
        ),
        request([b"POST /rpc/x HTTP/1.1", b"Content-Length: 64"]),  # no Host
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Host: y", b"Content-Length: 64"]),
        request(
            [b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64", b"Content-Length: 64"]
        ),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: +64"]),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64", b" folded"]),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64"], eol=b"\n"),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x\nX: y", b"Content-Length: 64"]),
        request(
            [b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64", b"Connection: upgrade"]
        ),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Bad Name: 1", b"Content-Length: 64"]),
        request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"X: a\x00b", b"Content-Length: 64"]),
        b"\r\n" + request([b"POST /rpc/x HTTP/1.1", b"Host: x", b"Content-Length: 64"]),
        b"POST /rpc/x HTTP/1.1\r\nHost: x\r\nX: " + b"y" * MAX_HEAD,  # no end in sight
    ]
    for data in declined:
        assert check(data) == DECLINED, data


_LINE_PIECES = st.sampled_from(
    [
        b"POST /rpc/devnet HTTP/1.1",
        b"POST /rpc/a?b=c HTTP/1.1",
        b"POST  /rpc/x HTTP/1.1",
        b"post /rpc/x HTTP/1.1",
        b"POST /rpc/x HTTP/1.0",
        b"POST /rpc/x HTTP/2.0",
        b"POST /rpc/\x7f HTTP/1.1",
        b"POST /rpc/x HTTP/1.1 ",
        b"GET /rpc/x HTTP/1.1",
    ]
)
_HEADER_PIECES = st.sampled_from(
    [
        b"Host: x",
        b"host:x",
        b"HOST: \t",
        b"Content-Length: 64",
        b"content-length:64 ",
        b"Content-Length: 0",
        b"Content-Length: 064",
        b"Content-Length: 6 4",
        b"Content-Length: -1",
        b"Content-Length: 99999999999999999999",
        b"Connection: close",
        b"Connection: keep-alive, close",
        b"Connection: te",
        b"Transfer-Encoding: identity",
        b"X-Lasso-Include-Meta: headers",
        b"X: \xff\xfe",
        b"X:",
        b"X : y",
        b":y",
        b"X: a\tb",
        b"X: a\x0bb",
        b"\tcontinued",
        b"X-Request-Id: r1",
    ]
)
_RAW = st.binary(max_size=40)


@settings(max_examples=600, deadline=None)
@given(
    line=st.one_of(_LINE_PIECES, _RAW),
    headers=st.lists(st.one_of(_HEADER_PIECES, _RAW), max_size=7),
    eol=st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r"]),
    body=st.binary(max_size=80),
    cut=st.integers(min_value=0, max_value=400),
)
def test_any_head_is_taken_only_as_h11_reads_it(
    line: bytes, headers: list[bytes], eol: bytes, body: bytes, cut: int
) -> None:
    data = request([line, *headers], body, eol)
    check(data)
    check(data[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_taken_only_as_h11_reads_them(data: bytes) -> None:
    check(data)


def test_the_answer_head_is_the_one_hypercorn_writes() -> None:
    head = response_head(
        200, [(b"content-type", b"application/json"), (b"content-length", b"45")], b"D", close=False
    )
    assert head == (
        b"HTTP/1.1 200 \r\ncontent-type: application/json\r\ncontent-length: 45\r\n"
        b"date: D\r\nserver: hypercorn-h11\r\n\r\n"
    )
    closing = response_head(413, [], b"D", close=True)
    assert closing.endswith(b"server: hypercorn-h11\r\nConnection: close\r\n\r\n")


def test_the_date_is_formatted_once_per_second() -> None:
    date = DateHeader()
    assert date.at(0.2) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert date.at(0.9) is date.at(0.2)
    assert date.at(86400.5) == b"Fri, 02 Jan 1970 00:00:00 GMT"
