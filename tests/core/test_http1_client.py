"""The upstream client's HTTP/1.1 (lasso.core.http1_client): one request head, one response read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lasso.core.http1_client import (
    DIRECT_BODY_BYTES,
    Disconnected,
    ProtocolError,
    RequestHead,
    Response,
    ResponseReader,
)

BODY = b'{"jsonrpc":"2.0","id":1,"result":"0x1"}'
BY_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
    len(BODY),
    BODY,
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\n" + BODY[:5] + b"\r\n"
    b"%x\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n"
    b"0\r\nX-Trailer: yes\r\n\r\n"
)


def read_in_pieces(raw: bytes, sizes: list[int], *, eof: bool = False) -> Response:
    reader = ResponseReader()
    start = 0
    for size in [*sizes, len(raw)]:
        piece, start = raw[start : start + max(1, size)], start + max(1, size)
        if piece:
            response = reader.feed(piece)
            if response is not None:
                return response
    assert eof, "the response never completed"
    return reader.eof()


def read(raw: bytes) -> Response:
    return read_in_pieces(raw, [])


@pytest.mark.slow
@given(st.lists(st.integers(1, 40), max_size=40), st.sampled_from([BY_LENGTH, CHUNKED]))
def test_any_split_of_the_stream_reads_the_same_response(sizes: list[int], raw: bytes) -> None:
    response = read_in_pieces(raw, sizes)
    assert (response.status, response.body, response.keep_alive) == (200, BODY, True)


def test_a_body_by_length_is_the_bytes_received_without_a_copy() -> None:
    reader = ResponseReader()
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(BODY)
    assert reader.feed(head) is None
    body = bytes(BODY)
    response = reader.feed(body)
    assert response is not None and response.body is body  # one piece: passed on as it is


def test_interim_responses_are_skipped() -> None:
    response = read(b"HTTP/1.1 100 Continue\r\n\r\n" + BY_LENGTH)
    assert (response.status, response.body) == (200, BODY)


def test_no_content_has_no_body() -> None:
    response = read(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert (response.status, response.body, response.keep_alive) == (204, b"", True)


def test_a_body_to_the_end_of_the_stream_never_reuses_the_connection() -> None:
    response = read_in_pieces(b"HTTP/1.1 200 OK\r\n\r\n" + BODY, [20, 10], eof=True)
    assert (response.body, response.keep_alive) == (BODY, False)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\n",
        b"HTTP/1.0 200 OK\r\n",
    ],
)
def test_connection_close_and_http_1_0_are_not_reused(head: bytes) -> None:
    response = read(head + b"content-length: %d\r\n\r\n%b" % (len(BODY), BODY))
    assert (response.body, response.keep_alive) == (BODY, False)


def test_bytes_after_the_response_answer_it_but_close_the_connection() -> None:
    response = read(BY_LENGTH + b"HTTP/1.1 200 OK\r\n")
    assert (response.body, response.keep_alive) == (BODY, False)


def test_retry_after_and_status_are_read() -> None:
    response = read(b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n")
    assert (response.status, response.retry_after, response.body) == (429, "7", b"")


def test_lf_only_lines_are_accepted() -> None:
    response = read(b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok")
    assert response.body == b"ok"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nxy",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_broken_framing_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_in_pieces(raw, [], eof=True)


def test_an_endless_head_is_a_protocol_error() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\n" + b"X-Junk: " + b"a" * 60_000 + b"\r\n")
    with pytest.raises(ProtocolError, match="too long"):
        reader.feed(b"X-More: " + b"a" * 10_000)


def test_end_of_stream_before_any_byte_is_a_clean_disconnect() -> None:
    reader = ResponseReader()
    with pytest.raises(Disconnected) as info:
        reader.eof()
    assert not info.value.started


def test_end_of_stream_mid_body_is_not() -> None:
    reader = ResponseReader()
    reader.feed(BY_LENGTH[:-3])
    assert reader.started
    with pytest.raises(Disconnected) as info:
        reader.eof()
    assert info.value.started


def test_the_request_head_is_encoded_once_with_the_length_per_request() -> None:
    head = RequestHead("/v1?key=k", [("host", "node:8545"), ("authorization", "Bearer t")])
    assert head.encode(12) == (
        b"POST /v1?key=k HTTP/1.1\r\nhost: node:8545\r\nauthorization: Bearer t\r\n"
        b"content-length: 12\r\n\r\n"
    )


@pytest.mark.parametrize("header", [("x-a", "v\r\nx-b: smuggled"), ("bad name", "v"), ("x", "\0")])
def test_a_header_that_could_split_the_request_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid request header"):
        RequestHead("/", [header])


def test_a_content_length_list_of_one_value_is_that_value() -> None:
    response = read(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
    assert response.body == b"ok"


def test_a_long_body_is_read_straight_into_one_buffer() -> None:
    body = bytes(range(256)) * (DIRECT_BODY_BYTES // 256 + 7)
    reader = ResponseReader()
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
    assert reader.buffer() is None
    assert reader.feed(head + body[:1000]) is None  # what came with the head is copied in
    start, response = 1000, None
    while response is None:
        into = reader.buffer()
        assert into is not None
        count = min(len(into), 70_000)
        into[:count] = body[start : start + count]  # as recv_into writes it
        into.release()
        start += count
        response = reader.wrote(count)
    assert (response.body, response.keep_alive) == (body, True)
    assert isinstance(response.body, bytearray)  # never joined from pieces nor copied
    assert reader.buffer() is None


def test_a_long_body_cut_short_says_how_much_came() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\nabc" % DIRECT_BODY_BYTES)
    into = reader.buffer()
    assert into is not None
    into.release()
    assert reader.wrote(10) is None
    with pytest.raises(Disconnected, match="received 13 bytes") as info:
        reader.eof()
    assert info.value.started
