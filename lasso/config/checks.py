"""Checks that span several fields, run on the substituted TOML tree.

They run even when the schema walk found problems, so one pass lists
everything; each check therefore skips values of the wrong shape (the walk has
already reported those).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lasso.config.gatechecks import check_gate
from lasso.config.model import DEFAULT_PROFILE
from lasso.config.problems import Path, quote, render_path
from lasso.config.schema import RESERVED_CHAIN_IDENTS, CircuitBreakerConfig
from lasso.config.secrets import mask_url
from lasso.shared.address import parse_redis_url

__all__ = ["cross_check"]

Report = Callable[[Path, str], None]

_RECOVERY, _MAX_RECOVERY = "recovery_timeout_ms", "max_recovery_timeout_ms"
_DEFAULT_BREAKER = CircuitBreakerConfig()


def cross_check(tree: Mapping[str, Any], report: Report) -> None:
    """Report unique-id, collision, reserved-name and ordering problems."""
    _check_cors(_table(tree.get("cors")), report)
    top_breaker = _table(tree.get("circuit_breaker"))
    _check_breaker(top_breaker, {}, ("circuit_breaker",), report)
    _check_profile(_table(tree.get("chains")), ("chains",), top_breaker, report)
    for slug, profile in _table(tree.get("profiles")).items():
        if slug == DEFAULT_PROFILE:
            report(("profiles", slug), 'the slug "default" is reserved for the top-level chains')
        chains = _table(_table(profile).get("chains"))
        _check_profile(chains, ("profiles", slug, "chains"), top_breaker, report)
    check_gate(tree, report)  # [auth], [rate_limit], [server] trusted_proxies
    _check_shared(_table(tree.get("shared")), report)


def _check_shared(shared: Mapping[str, Any], report: Report) -> None:
    """``[shared] redis_url``: its path, if any, is a database number (lasso.shared)."""
    url = shared.get("redis_url")
    if not isinstance(url, str):
        return
    try:
        parse_redis_url(url)
    except ValueError:
        report(
            ("shared", "redis_url"),
            f"{quote(mask_url(url))}: the path must be a database number, e.g. /0",
        )


def _check_profile(
    chains: Mapping[str, Any], path: Path, top_breaker: Mapping[str, Any], report: Report
) -> None:
    _check_identifiers(chains, path, report)
    for name, chain in chains.items():
        chain_path = (*path, name)
        spec = _table(chain)
        chain_breaker = _table(spec.get("circuit_breaker"))
        _check_breaker(chain_breaker, top_breaker, (*chain_path, "circuit_breaker"), report)
        _check_providers(_array(spec.get("providers")), (*chain_path, "providers"), report)


def _check_identifiers(chains: Mapping[str, Any], path: Path, report: Report) -> None:
    """Names, decimal chain ids and aliases must each pick out one chain."""
    for name in chains:
        if name in RESERVED_CHAIN_IDENTS:
            report((*path, name), f"{quote(name)} is reserved for routes; pick another chain name")
    # identifier -> (owning chain, what it is to that chain)
    owners: dict[str, tuple[str, str]] = {name: (name, "the name") for name in chains}
    for name, chain in chains.items():
        chain_id = _table(chain).get("chain_id")
        if not _is_int(chain_id):
            continue
        owner = owners.setdefault(str(chain_id), (name, "the chain id"))
        if owner[0] == name:
            continue
        what = "used by" if owner[1] == "the chain id" else "the name of"
        report(
            (*path, name, "chain_id"),
            f"chain id {chain_id} is already {what} chain {quote(owner[0])}",
        )
    for name, chain in chains.items():
        seen: set[str] = set()
        for index, alias in enumerate(_array(_table(chain).get("aliases"))):
            if not isinstance(alias, str):
                continue
            alias_path = (*path, name, "aliases", index)
            if alias in seen:
                report(alias_path, f"duplicate alias {quote(alias)}")
                continue
            if alias in RESERVED_CHAIN_IDENTS:
                report(alias_path, f"{quote(alias)} is reserved for routes; pick another alias")
            seen.add(alias)
            owner = owners.setdefault(alias, (name, "an alias"))
            if owner[0] != name:
                report(
                    alias_path,
                    f"alias {quote(alias)} is already {owner[1]} of chain {quote(owner[0])}",
                )


def _check_providers(providers: list[Any], path: Path, report: Report) -> None:
    first_at: dict[str, int] = {}
    for index, provider in enumerate(providers):
        spec = _table(provider)
        provider_id = spec.get("id")
        if isinstance(provider_id, str):
            first = first_at.setdefault(provider_id, index)
            if first != index:
                where = render_path((path[-1], first))
                report(
                    (*path, index, "id"),
                    f"duplicate provider id {quote(provider_id)} (first used at {where})",
                )
        headers = _table(spec.get("headers"))
        if "api_key" in spec and any(key.lower() == "authorization" for key in headers):
            report(
                (*path, index, "api_key"),
                "set either api_key or an Authorization header, not both",
            )


def _check_breaker(
    breaker: Mapping[str, Any], inherited: Mapping[str, Any], path: Path, report: Report
) -> None:
    """``max_recovery_timeout_ms`` may not be below ``recovery_timeout_ms`` after merging."""
    if _RECOVERY not in breaker and _MAX_RECOVERY not in breaker:
        return  # nothing set here; any conflict belongs to the inherited table
    recovery = _merged(_RECOVERY, breaker, inherited)
    maximum = _merged(_MAX_RECOVERY, breaker, inherited)
    if recovery is None or maximum is None or maximum >= recovery:
        return
    key = _MAX_RECOVERY if _MAX_RECOVERY in breaker else _RECOVERY
    report(
        (*path, key),
        f"{_MAX_RECOVERY} ({maximum}) must be at least {_RECOVERY} ({recovery})",
    )


def _merged(key: str, table: Mapping[str, Any], inherited: Mapping[str, Any]) -> int | None:
    value = table.get(key, inherited.get(key, getattr(_DEFAULT_BREAKER, key)))
    # Values below 1 are already reported by the schema walk.
    return value if _is_int(value) and value >= 1 else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_cors(cors: Mapping[str, Any], report: Report) -> None:
    """Credentials for every origin would let any web page act with a user's cookies."""
    if cors.get("allow_credentials") is True and "*" in _array(cors.get("allow_origins")):
        report(
            ("cors", "allow_credentials"),
            'cannot be true with "*" in allow_origins: list the trusted origins',
        )


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _array(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
