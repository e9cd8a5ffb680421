"""``eth_subscribe`` parameters: validation, canonical keys, and log matching.

Every client subscription with the same canonical key shares one upstream subscription,
so the key must be equal exactly when two subscriptions deliver the same notifications:

* hex is lowercased with a ``0x`` prefix;
* ``address`` (a string or a list) becomes a sorted list without duplicates; an empty
  list means any address, the same as no ``address``;
* each ``topics`` position is ``null`` (any topic), one hash, or an OR-list; OR-lists are
  sorted and de-duplicated, a one-element OR-list is the bare hash, an empty OR-list or
  one containing ``null`` matches anything and so is ``null`` (as in geth), and trailing
  ``null`` positions are dropped (they match everything);
* ``lasso_resume_from`` is per client and never part of the key.

The key is the compact JSON of the parameters Lasso sends upstream, e.g.
``["logs",{"address":["0xab…"],"topics":["0xdd…",null,["0x01…","0x02…"]]}]``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from lasso.core.subs.items import hex_quantity, is_hex, parse_quantity

__all__ = [
    "InvalidSubscription",
    "LogFilter",
    "SubscriptionKind",
    "SubscriptionRequest",
    "get_logs_params",
    "log_matches",
    "parse_subscribe_params",
    "upstream_params",
]

MAX_TOPICS: Final = 4
RESUME_FIELD: Final = "lasso_resume_from"
_RANGE_FIELDS: Final = ("fromBlock", "toBlock", "blockHash")
_encode = msgspec.json.Encoder().encode


class InvalidSubscription(ValueError):
    """The client's ``eth_subscribe`` params are not valid (JSON-RPC -32602)."""


class SubscriptionKind(enum.Enum):
    NEW_HEADS = "newHeads"
    LOGS = "logs"
    NEW_PENDING_TRANSACTIONS = "newPendingTransactions"


Topic = tuple[str, ...] | None  # one position: None = any, else the sorted OR-set


class LogFilter(msgspec.Struct, frozen=True):
    """A normalized log filter; empty ``addresses`` means any address."""

    addresses: tuple[str, ...] = ()
    topics: tuple[Topic, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The filter object to send upstream (no empty fields)."""
        out: dict[str, Any] = {}
        if self.addresses:
            out["address"] = list(self.addresses)
        if self.topics:
            out["topics"] = [_topic_json(t) for t in self.topics]
        return out


class SubscriptionRequest(msgspec.Struct, frozen=True):
    kind: SubscriptionKind
    key: str  # canonical: equal keys share one upstream subscription
    log_filter: LogFilter | None = None  # set for LOGS
    full_transactions: bool = False  # newPendingTransactions with ``true``
    resume_from: int | None = None  # lasso_resume_from, for NEW_HEADS and LOGS


def parse_subscribe_params(params: object) -> SubscriptionRequest:
    """Validate ``eth_subscribe`` params; raises :class:`InvalidSubscription`."""
    if not isinstance(params, list) or not params:
        raise InvalidSubscription(
            'eth_subscribe params must be a non-empty array such as ["newHeads"]'
        )
    name, options = params[0], params[1:]
    if name == SubscriptionKind.NEW_HEADS.value:
        return _new_heads(options)
    if name == SubscriptionKind.LOGS.value:
        return _logs(options)
    if name == SubscriptionKind.NEW_PENDING_TRANSACTIONS.value:
        return _pending(options)
    supported = ", ".join(k.value for k in SubscriptionKind)
    raise InvalidSubscription(f"unsupported subscription type {name!r}; supported: {supported}")


def upstream_params(request: SubscriptionRequest) -> list[Any]:
    """The ``eth_subscribe`` params to send upstream: canonical, without lasso_ fields."""
    params: list[Any] = [request.kind.value]
    if request.log_filter is not None:
        params.append(request.log_filter.to_json())
    if request.full_transactions:
        params.append(True)
    return params


def get_logs_params(log_filter: LogFilter, blocks: range) -> list[Any]:
    """``eth_getLogs`` params covering ``blocks`` (a non-empty range) with this filter."""
    if not blocks:
        raise ValueError("an eth_getLogs backfill needs at least one block")
    query = log_filter.to_json()
    query["fromBlock"] = hex_quantity(blocks.start)
    query["toBlock"] = hex_quantity(blocks.stop - 1)
    return [query]


def log_matches(log_filter: LogFilter, log: Mapping[str, Any]) -> bool:
    """Whether ``log`` (a decoded log object) satisfies the filter."""
    if log_filter.addresses:
        address = log.get("address")
        if not isinstance(address, str) or address.lower() not in log_filter.addresses:
            return False
    topics = log.get("topics")
    if not isinstance(topics, list):
        topics = []
    for position, wanted in enumerate(log_filter.topics):
        if wanted is None:
            continue
        if position >= len(topics):
            return False
        got = topics[position]
        if not isinstance(got, str) or got.lower() not in wanted:
            return False
    return True


def _new_heads(options: list[Any]) -> SubscriptionRequest:
    resume = _resume_only(SubscriptionKind.NEW_HEADS, options)
    return _request(SubscriptionKind.NEW_HEADS, resume_from=resume)


def _pending(options: list[Any]) -> SubscriptionRequest:
    if len(options) > 1 or (options and not isinstance(options[0], bool)):
        raise InvalidSubscription(
            "newPendingTransactions takes at most one parameter, a boolean (full transactions)"
        )
    full = bool(options and options[0])
    return _request(SubscriptionKind.NEW_PENDING_TRANSACTIONS, full_transactions=full)


def _resume_only(kind: SubscriptionKind, options: list[Any]) -> int | None:
    if not options:
        return None
    if len(options) > 1 or not isinstance(options[0], dict):
        example = f'{{"{RESUME_FIELD}": "0x10"}}'
        raise InvalidSubscription(
            f"{kind.value} takes at most one parameter, an object such as {example}"
        )
    extra = sorted(k for k in options[0] if k != RESUME_FIELD)
    if extra:
        raise InvalidSubscription(f"{kind.value} does not take {_names(extra)}")
    return _resume_from(options[0])


def _logs(options: list[Any]) -> SubscriptionRequest:
    if len(options) > 1:
        raise InvalidSubscription("logs takes at most one parameter, the filter object")
    raw: object = options[0] if options else {}
    if not isinstance(raw, dict):
        raise InvalidSubscription("the logs filter must be an object with address and/or topics")
    ranged = [k for k in _RANGE_FIELDS if k in raw]
    if ranged:
        raise InvalidSubscription(
            f"a logs subscription follows the chain head, so {_names(ranged)} "
            f"cannot be used; use {RESUME_FIELD} to replay recent blocks"
        )
    unknown = sorted(k for k in raw if k not in ("address", "topics", RESUME_FIELD))
    if unknown:
        raise InvalidSubscription(f"unknown log filter field {_names(unknown)}")
    log_filter = LogFilter(_addresses(raw.get("address")), _topics(raw.get("topics")))
    return _request(SubscriptionKind.LOGS, log_filter=log_filter, resume_from=_resume_from(raw))


def _request(
    kind: SubscriptionKind,
    *,
    log_filter: LogFilter | None = None,
    full_transactions: bool = False,
    resume_from: int | None = None,
) -> SubscriptionRequest:
    partial = SubscriptionRequest(kind, "", log_filter, full_transactions)
    key = _encode(upstream_params(partial)).decode()
    return SubscriptionRequest(kind, key, log_filter, full_transactions, resume_from)


def _resume_from(options: Mapping[str, Any]) -> int | None:
    if RESUME_FIELD not in options:
        return None
    number = parse_quantity(options[RESUME_FIELD])
    if number is None:
        raise InvalidSubscription(f'{RESUME_FIELD} must be a hex block number such as "0x1b4"')
    return number


def _addresses(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise InvalidSubscription("address must be a hex string or an array of hex strings")
    return tuple(sorted({_hex_bytes(a, 20, "address") for a in items}))


def _topics(value: object) -> tuple[Topic, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidSubscription("topics must be an array")
    if len(value) > MAX_TOPICS:
        raise InvalidSubscription(f"topics has {len(value)} positions; at most {MAX_TOPICS}")
    topics = [_topic(position) for position in value]
    while topics and topics[-1] is None:
        topics.pop()
    return tuple(topics)


def _topic(value: object) -> Topic:
    if value is None:
        return None
    if isinstance(value, str):
        return (_hex_bytes(value, 32, "topic"),)
    if not isinstance(value, list):
        raise InvalidSubscription("each topics position must be null, a hash or an array of hashes")
    if not value or any(v is None for v in value):
        return None  # an empty OR-list, or one with null in it, matches any topic
    return tuple(sorted({_hex_bytes(v, 32, "topic") for v in value}))


def _hex_bytes(value: object, size: int, what: str) -> str:
    if (
        isinstance(value, str)
        and len(value) == 2 + 2 * size
        and value[:2] in ("0x", "0X")
        and is_hex(value[2:])
    ):
        return "0x" + value[2:].lower()
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise InvalidSubscription(
        f"{what} {shown} must be a {size}-byte hex string (0x and {2 * size} hex digits)"
    )


def _topic_json(topic: Topic) -> str | list[str] | None:
    if topic is None:
        return None
    return topic[0] if len(topic) == 1 else list(topic)


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)
