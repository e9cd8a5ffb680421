"""Cross-field checks of the inbound gate's keys: ``[auth]``, ``[rate_limit]`` and
``[server] trusted_proxies``. Run by :func:`lasso.config.checks.cross_check` on the
substituted tree; values of the wrong shape are skipped (the schema walk reports them).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from lasso.config.problems import Path, quote

__all__ = ["check_gate"]

Report = Callable[[Path, str], None]


def check_gate(tree: Mapping[str, Any], report: Report) -> None:
    auth = _table(tree.get("auth"))
    _check_api_keys(_list(auth.get("api_keys")), report)
    if auth.get("protect_observability") is True and not _list(auth.get("api_keys")):
        report(
            ("auth", "protect_observability"),
            "needs at least one key in auth.api_keys (no one could see /metrics otherwise)",
        )
    _check_burst(_table(tree.get("rate_limit")), ("rate_limit",), report)
    for index, cidr in enumerate(_list(_table(tree.get("server")).get("trusted_proxies"))):
        if isinstance(cidr, str) and cidr:
            _check_cidr(cidr, ("server", "trusted_proxies", index), report)


def _check_api_keys(keys: list[Any], report: Report) -> None:
    names: dict[str, int] = {}
    digests: dict[str, int] = {}
    for index, entry in enumerate(keys):
        spec = _table(entry)
        path = ("auth", "api_keys", index)
        name = spec.get("name")
        if isinstance(name, str):
            first = names.setdefault(name, index)
            if first != index:
                report((*path, "name"), f"duplicate key name {quote(name)} (first at {first})")
        given = [field for field in ("key", "sha256") if field in spec]
        if len(given) != 1:
            report(path, "give exactly one of key (the key itself) or sha256 (its digest)")
            continue
        value = spec[given[0]]
        if not isinstance(value, str):
            continue
        hexdigest = (
            hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
            if given[0] == "key"
            else value.lower()
        )
        first = digests.setdefault(hexdigest, index)
        if first != index:
            report((*path, given[0]), f"the same key as auth.api_keys[{first}]")
        _check_burst(spec, path, report)


def _check_burst(table: Mapping[str, Any], path: Path, report: Report) -> None:
    if "burst" in table and "rps" not in table:
        report((*path, "burst"), "burst needs rps (the refill rate) beside it")


def _check_cidr(cidr: str, path: Path, report: Report) -> None:
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        report(path, f"must be an IP address or CIDR network (10.0.0.0/8, ::1), got {quote(cidr)}")


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
