"""eth_subscribe params: validation, canonical keys, upstream params and log matching."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lasso.core.subs import (
    InvalidSubscription,
    LogFilter,
    SubscriptionKind,
    get_logs_params,
    log_matches,
    parse_subscribe_params,
    upstream_params,
)

A1, A2 = "0x" + "a1" * 20, "0x" + "a2" * 20
T1, T2, T3 = "0x" + "01" * 32, "0x" + "02" * 32, "0x" + "03" * 32


def up(value: str) -> str:
    return "0x" + value[2:].upper()


VALID: list[tuple[list[Any], SubscriptionKind, str, int | None]] = [
    (["newHeads"], SubscriptionKind.NEW_HEADS, '["newHeads"]', None),
    (["newHeads", {}], SubscriptionKind.NEW_HEADS, '["newHeads"]', None),
    (["newHeads", {"lasso_resume_from": "0x64"}], SubscriptionKind.NEW_HEADS, '["newHeads"]', 100),
    (["newHeads", {"lasso_resume_from": "0X0"}], SubscriptionKind.NEW_HEADS, '["newHeads"]', 0),
    (["logs"], SubscriptionKind.LOGS, '["logs",{}]', None),
    (["logs", {}], SubscriptionKind.LOGS, '["logs",{}]', None),
    (["logs", {"address": None, "topics": None}], SubscriptionKind.LOGS, '["logs",{}]', None),
    (["logs", {"address": [], "topics": []}], SubscriptionKind.LOGS, '["logs",{}]', None),
    (["logs", {"topics": [None, None]}], SubscriptionKind.LOGS, '["logs",{}]', None),
    (["logs", {"topics": [[], [None, T1]]}], SubscriptionKind.LOGS, '["logs",{}]', None),
    (
        ["logs", {"address": up(A2)}],
        SubscriptionKind.LOGS,
        f'["logs",{{"address":["{A2}"]}}]',
        None,
    ),
    (
        ["logs", {"address": [A2, A1, up(A2)], "lasso_resume_from": "0x10"}],
        SubscriptionKind.LOGS,
        f'["logs",{{"address":["{A1}","{A2}"]}}]',
        16,
    ),
    (
        ["logs", {"topics": [[T2, up(T1), T2], None, [T3], None]}],
        SubscriptionKind.LOGS,
        f'["logs",{{"topics":[["{T1}","{T2}"],null,"{T3}"]}}]',
        None,
    ),
    (
        ["logs", {"topics": [T1], "address": [A1]}],
        SubscriptionKind.LOGS,
        f'["logs",{{"address":["{A1}"],"topics":["{T1}"]}}]',
        None,
    ),
    (
        ["newPendingTransactions"],
        SubscriptionKind.NEW_PENDING_TRANSACTIONS,
        '["newPendingTransactions"]',
        None,
    ),
    (
        ["newPendingTransactions", False],
        SubscriptionKind.NEW_PENDING_TRANSACTIONS,
        '["newPendingTransactions"]',
        None,
    ),
    (
        ["newPendingTransactions", True],
        SubscriptionKind.NEW_PENDING_TRANSACTIONS,
        '["newPendingTransactions",true]',
        None,
    ),
]


@pytest.mark.parametrize(("params", "kind", "key", "resume_from"), VALID)
def test_valid_params_and_their_keys(
    params: list[Any], kind: SubscriptionKind, key: str, resume_from: int | None
) -> None:
    request = parse_subscribe_params(params)
    assert (request.kind, request.key, request.resume_from) == (kind, key, resume_from)
    # What goes upstream is the key itself, decoded, and parses back to the same key.
    assert upstream_params(request) == json.loads(key)
    assert parse_subscribe_params(upstream_params(request)).key == key


INVALID: list[tuple[object, str]] = [
    (None, 'eth_subscribe params must be a non-empty array such as ["newHeads"]'),
    ([], 'eth_subscribe params must be a non-empty array such as ["newHeads"]'),
    ({"newHeads": 1}, 'eth_subscribe params must be a non-empty array such as ["newHeads"]'),
    (
        ["newBlocks"],
        "unsupported subscription type 'newBlocks'; supported: newHeads, logs, newPendingTransactions",
    ),
    ([7], "unsupported subscription type 7; supported: newHeads, logs, newPendingTransactions"),
    (
        ["alchemy_minedTransactions", {}],
        "unsupported subscription type 'alchemy_minedTransactions'; supported: newHeads, logs, newPendingTransactions",
    ),
    (
        ["newHeads", True],
        'newHeads takes at most one parameter, an object such as {"lasso_resume_from": "0x10"}',
    ),
    (
        ["newHeads", {}, {}],
        'newHeads takes at most one parameter, an object such as {"lasso_resume_from": "0x10"}',
    ),
    (["newHeads", {"includeTransactions": True}], "newHeads does not take 'includeTransactions'"),
    (
        ["newHeads", {"lasso_resume_from": 100}],
        'lasso_resume_from must be a hex block number such as "0x1b4"',
    ),
    (
        ["newHeads", {"lasso_resume_from": "0x"}],
        'lasso_resume_from must be a hex block number such as "0x1b4"',
    ),
    (
        ["newHeads", {"lasso_resume_from": "0x_1"}],
        'lasso_resume_from must be a hex block number such as "0x1b4"',
    ),
    (
        ["newHeads", {"lasso_resume_from": "latest"}],
        'lasso_resume_from must be a hex block number such as "0x1b4"',
    ),
    (["logs", {}, {}], "logs takes at most one parameter, the filter object"),
    (["logs", [A1]], "the logs filter must be an object with address and/or topics"),
    (
        ["logs", {"fromBlock": "0x1"}],
        "a logs subscription follows the chain head, so 'fromBlock' cannot be used; use lasso_resume_from to replay recent blocks",
    ),
    (
        ["logs", {"toBlock": "latest", "blockHash": T1}],
        "a logs subscription follows the chain head, so 'toBlock', 'blockHash' cannot be used; use lasso_resume_from to replay recent blocks",
    ),
    (["logs", {"adress": A1}], "unknown log filter field 'adress'"),
    (["logs", {"address": 5}], "address must be a hex string or an array of hex strings"),
    (
        ["logs", {"address": "0x1234"}],
        "address '0x1234' must be a 20-byte hex string (0x and 40 hex digits)",
    ),
    (
        ["logs", {"address": [A1, "a1" * 20]}],
        f"address '{'a1' * 20}' must be a 20-byte hex string (0x and 40 hex digits)",
    ),
    (
        ["logs", {"address": "0x" + "g1" * 20}],
        f"address '0x{'g1' * 20}' must be a 20-byte hex string (0x and 40 hex digits)",
    ),
    (["logs", {"topics": T1}], "topics must be an array"),
    (["logs", {"topics": [T1, T1, T1, T1, T1]}], "topics has 5 positions; at most 4"),
    (
        ["logs", {"topics": [A1]}],
        f"topic '{A1}' must be a 32-byte hex string (0x and 64 hex digits)",
    ),
    (
        ["logs", {"topics": [[T1, 5]]}],
        "topic 5 must be a 32-byte hex string (0x and 64 hex digits)",
    ),
    (
        ["logs", {"topics": [{"or": T1}]}],
        "each topics position must be null, a hash or an array of hashes",
    ),
    (
        ["newPendingTransactions", "full"],
        "newPendingTransactions takes at most one parameter, a boolean (full transactions)",
    ),
    (
        ["newPendingTransactions", True, True],
        "newPendingTransactions takes at most one parameter, a boolean (full transactions)",
    ),
    (
        ["newPendingTransactions", {"lasso_resume_from": "0x1"}],
        "newPendingTransactions takes at most one parameter, a boolean (full transactions)",
    ),
]


@pytest.mark.parametrize(("params", "message"), INVALID)
def test_invalid_params_say_why(params: object, message: str) -> None:
    with pytest.raises(InvalidSubscription) as info:
        parse_subscribe_params(params)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidSubscription) as info:
        parse_subscribe_params(["logs", {"address": "0x" + "ab" * 100}])
    assert str(info.value) == (
        f"address '0x{'ab' * 37}... must be a 20-byte hex string (0x and 40 hex digits)"
    )


def test_equivalent_filters_share_a_key_and_different_ones_do_not() -> None:
    keys = {
        parse_subscribe_params(["logs", f]).key
        for f in (
            {"address": A1, "topics": [T1]},
            {"address": [up(A1)], "topics": [[T1], None]},
            {"address": [A1, A1], "topics": [[T1, up(T1)], None, None, None]},
        )
    }
    assert len(keys) == 1
    different = {
        parse_subscribe_params(["logs", f]).key
        for f in ({"address": A1}, {"address": A2}, {"topics": [None, T1]}, {"topics": [T1]}, {})
    }
    assert len(different) == 5


MATCH: list[tuple[LogFilter, dict[str, Any], bool]] = [
    (LogFilter(), {"address": A1, "topics": []}, True),
    (LogFilter(), {}, True),
    (LogFilter((A1,)), {"address": up(A1), "topics": []}, True),
    (LogFilter((A1,)), {"address": A2, "topics": []}, False),
    (LogFilter((A1,)), {"topics": []}, False),
    (LogFilter((A1, A2)), {"address": A2}, True),
    (LogFilter(topics=((T1,),)), {"topics": [up(T1), T2]}, True),
    (LogFilter(topics=((T1,),)), {"topics": [T2]}, False),
    (LogFilter(topics=((T1,),)), {"topics": []}, False),
    (LogFilter(topics=(None, (T2, T3))), {"topics": [T1, T3]}, True),
    (LogFilter(topics=(None, (T2, T3))), {"topics": [T1]}, False),
    (LogFilter(topics=(None, (T2, T3))), {"topics": [T1, T1]}, False),
    (LogFilter(topics=(None, (T2,))), {"topics": [T1, None]}, False),
    (LogFilter(topics=((T1,),)), {"topics": "nonsense"}, False),
]


@pytest.mark.parametrize(("log_filter", "log", "expected"), MATCH)
def test_log_matches(log_filter: LogFilter, log: dict[str, Any], expected: bool) -> None:
    assert log_matches(log_filter, log) is expected


def test_get_logs_params() -> None:
    request = parse_subscribe_params(["logs", {"address": A1, "topics": [None, [T2, T1]]}])
    assert request.log_filter is not None
    assert get_logs_params(request.log_filter, range(256, 300)) == [
        {"address": [A1], "topics": [None, [T1, T2]], "fromBlock": "0x100", "toBlock": "0x12b"}
    ]
    assert get_logs_params(LogFilter(), range(5, 6)) == [{"fromBlock": "0x5", "toBlock": "0x5"}]
    with pytest.raises(ValueError, match="at least one block"):
        get_logs_params(LogFilter(), range(5, 5))
