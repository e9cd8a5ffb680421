"""The size bound on log filters: counted, not validated."""

from __future__ import annotations

import json

import pytest

from lasso.core.subs.bounds import check_filter_size, filter_size_error, log_filter_size_error
from lasso.errors import InvalidParams

ADDR = "0x" + "ab" * 20
TOPIC = "0x" + "cd" * 32


def error(log_filter: object, method: str = "eth_getLogs") -> str | None:
    params = json.dumps([log_filter]).encode()
    return filter_size_error(method, params, max_addresses=3, max_topics=4)


def test_addresses_are_counted() -> None:
    assert error({"address": [ADDR] * 3}) is None
    assert error({"address": [ADDR] * 4}) == (
        "the log filter names 4 addresses; at most 3 are allowed"
    )
    assert error({"address": ADDR}) is None  # a bare string is one


def test_every_topic_alternative_in_every_position_counts() -> None:
    assert error({"topics": [TOPIC, None, [TOPIC, TOPIC], TOPIC]}) is None  # 4
    assert error({"topics": [[TOPIC, TOPIC, TOPIC], None, [TOPIC, TOPIC]]}) == (
        "the log filter names 5 topic values; at most 4 are allowed"
    )


@pytest.mark.parametrize(
    "params",
    [b"not json" * 10, b'"a string"' * 10, b"[]" + b" " * 40, json.dumps([[ADDR] * 9]).encode()],
)
def test_what_cannot_be_read_is_the_nodes_business(params: bytes) -> None:
    assert filter_size_error("eth_getLogs", params, max_addresses=3, max_topics=4) is None


def test_odd_field_types_are_counted_as_written_not_judged() -> None:
    # One non-list address is one entry; topics that are not a list name no values.
    assert log_filter_size_error({"address": 7}, max_addresses=1, max_topics=0) is None
    assert log_filter_size_error({"topics": {"a": 1}}, max_addresses=1, max_topics=0) is None
    assert log_filter_size_error("a string", max_addresses=0, max_topics=0) is None


def test_only_filter_methods_are_looked_at() -> None:
    params = json.dumps([{"address": [ADDR] * 10}]).encode()
    assert error({"address": [ADDR] * 10}, "eth_newFilter") is not None
    assert filter_size_error("eth_call", params, max_addresses=3, max_topics=4) is None


def test_check_raises_invalid_params() -> None:
    params = json.dumps([{"address": [ADDR] * 10}]).encode()
    with pytest.raises(InvalidParams) as raised:
        check_filter_size("eth_getLogs", params, 3, 4)
    assert raised.value.code == -32602
    assert raised.value.message.startswith("Invalid params: the log filter names 10 addresses")
    check_filter_size("eth_getLogs", params, 10, 4)
