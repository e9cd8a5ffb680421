"""The params of the filter methods, read the way geth reads them.

* ``eth_newFilter [criteria]``: the criteria's ``address`` / ``topics`` become a
  canonical logs subscription (:func:`lasso.core.subs.parse_subscribe_params`), so
  filters with the same address and topics share one upstream stream; ``fromBlock`` /
  ``toBlock`` become the block span the filter's changes are checked against (a tag
  is no bound, as in geth's ``filterLogs``). Which combinations geth accepts is
  geth's ``SubscribeLogs``: both tags ``latest`` (or absent), or a number up to a
  number or to ``latest``; ``pending`` is refused. ``blockHash`` names one past block,
  so a filter on it never changes (geth accepts it the same way).
* ``eth_getFilterChanges`` / ``eth_getFilterLogs`` / ``eth_uninstallFilter``: one id.

Errors are :class:`FilterParamsError` with geth's code and message: -32602 for
params that do not decode, -32000 for a block combination geth refuses.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from lasso.core.subs import InvalidSubscription, SubscriptionRequest, parse_subscribe_params
from lasso.core.subs.items import parse_quantity

__all__ = [
    "FILTER_METHODS",
    "FilterCriteria",
    "FilterParamsError",
    "parse_filter_id",
    "parse_new_filter",
]

#: The methods the gateway serves itself when it serves filters.
FILTER_METHODS: Final = frozenset(
    {
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_uninstallFilter",
    }
)
_LATEST: Final = -2
_PENDING: Final = -1
#: geth's rpc.BlockNumber values for the tags (earliest is block 0).
_TAGS: Final = {"latest": _LATEST, "pending": _PENDING, "earliest": 0, "safe": -4, "finalized": -3}
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_FIELDS: Final = frozenset({"address", "topics", "fromBlock", "toBlock", "blockHash"})


class FilterParamsError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FilterCriteria(msgspec.Struct, frozen=True):
    """A log filter: its shared subscription, and the block span of its changes."""

    request: SubscriptionRequest
    first: int | None
    last: int | None


def parse_filter_id(params: bytes) -> str:
    """The one filter id of ``eth_getFilterChanges`` and kin (lower case, as issued)."""
    args = _decode_args(params)
    fid = _only_argument([] if args is None else args)
    if not isinstance(fid, str):
        kind = type(fid).__name__
        message = f"invalid argument 0: json: cannot unmarshal {kind} into Go value of type string"
        raise FilterParamsError(-32602, message)
    return fid.lower()


def parse_new_filter(params: bytes) -> FilterCriteria:
    """``eth_newFilter``'s criteria; raises :class:`FilterParamsError`."""
    crit = _only_argument(_decode_args(params))
    if not isinstance(crit, dict):
        raise FilterParamsError(-32602, "invalid argument 0: criteria must be an object")
    return _criteria(crit)


def _decode_args(params: bytes) -> Any:
    """The decoded params (absent params are no arguments)."""
    try:
        return msgspec.json.decode(params) if params else []
    except msgspec.DecodeError:
        raise FilterParamsError(-32602, "invalid argument 0: not JSON") from None


def _only_argument(args: Any) -> Any:
    """The one argument of a method taking exactly one, refused as geth words it."""
    if not isinstance(args, list):
        raise FilterParamsError(-32602, "non-array args")
    if not args:
        raise FilterParamsError(-32602, "missing value for required argument 0")
    if len(args) > 1:
        raise FilterParamsError(-32602, "too many arguments, want at most 1")
    return args[0]


def _criteria(crit: dict[str, Any]) -> FilterCriteria:
    if "blockHash" in crit and ("fromBlock" in crit or "toBlock" in crit):
        raise FilterParamsError(
            -32602,
            "invalid argument 0: cannot specify both BlockHash and FromBlock/ToBlock, "
            "choose one or the other",
        )
    wanted = {k: crit[k] for k in ("address", "topics") if crit.get(k) is not None}
    try:
        request = parse_subscribe_params(["logs", wanted])
    except InvalidSubscription as exc:
        raise FilterParamsError(-32602, f"invalid argument 0: {exc}") from None
    if "blockHash" in crit:  # geth's changes ignore it: new logs as for latest..latest
        _check_hash(crit["blockHash"])
        return FilterCriteria(request, first=None, last=None)
    first = _block(crit.get("fromBlock"))
    last = _block(crit.get("toBlock"))
    _check_combination(first, last)
    return FilterCriteria(request, _bound(first), _bound(last))


def _block(value: object) -> int:
    if value is None:
        return _LATEST
    if isinstance(value, str) and value in _TAGS:
        return _TAGS[value]
    number = parse_quantity(value)
    if number is None:
        raise FilterParamsError(-32602, f"invalid argument 0: invalid block number {value!r}")
    if number >= 1 << 64:  # geth's hexutil.DecodeUint64, then its int64 check
        raise FilterParamsError(-32602, "invalid argument 0: hex number > 64 bits")
    if number >= 1 << 63:
        raise FilterParamsError(-32602, "invalid argument 0: block number larger than int64")
    return number


def _check_hash(value: object) -> None:
    """A ``blockHash`` geth can decode (a ``common.Hash``: 0x and 64 hex digits)."""
    digits = value[2:] if isinstance(value, str) and value[:2] in ("0x", "0X") else ""
    if len(digits) != 64 or any(c not in _HEX for c in digits):
        raise FilterParamsError(
            -32602,
            "invalid argument 0: blockHash must be a 32-byte hex string (0x and 64 hex digits)",
        )


def _check_combination(first: int, last: int) -> None:
    """geth's ``EventSystem.SubscribeLogs``."""
    if first == _PENDING and last == _PENDING:
        raise FilterParamsError(-32000, "pending logs are not supported")
    if first == _LATEST and last == _LATEST:
        return
    if first >= 0 and last >= 0 and last >= first:
        return
    if first >= _LATEST and last == _PENDING:
        raise FilterParamsError(-32000, "pending logs are not supported")
    if first >= 0 and last == _LATEST:
        return
    raise FilterParamsError(-32000, "invalid from and to block combination")


def _bound(number: int) -> int | None:
    return number if number >= 0 else None
