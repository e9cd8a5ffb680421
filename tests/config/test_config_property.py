"""Whatever a settings file holds, loading returns Settings or raises ConfigError."""

from __future__ import annotations

import contextlib
import copy
import datetime
import math
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lasso.config import (
    STRATEGY_NAMES,
    ConfigError,
    SettingsFile,
    parse_settings,
    settings_from_dict,
)
from lasso.config.checks import cross_check
from lasso.config.problems import quote
from lasso.config.validate import Walker

# Field names from the schema, so generated documents reach past the first level.
FIELD_NAMES = sorted(
    {
        field.encode_name
        for struct in msgspec.inspect.multi_type_info([SettingsFile])
        for field in getattr(struct, "fields", ())
    }
    | {"server", "routing", "circuit_breaker", "chains", "profiles", "providers"}
)
KEYS = st.sampled_from([*FIELD_NAMES, "devnet", "default", "team", "Bad", "a.b"]) | st.text(
    max_size=4
)
STRINGS = st.sampled_from(
    ["http://h", "https://h/v2/x", "ws://h", "${X}", "${NOPE}", "$${", "fastest", "", "a"]
) | st.text(max_size=6)
SCALARS = (
    st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | STRINGS
)
TOML_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(KEYS, TOML_VALUES, max_size=5)

# Valid documents, built so every cross-field rule holds.
HEADER_VALUES = st.sampled_from(["${X}", "$${X}"]) | st.text(
    st.characters(exclude_characters="\r\n\x00$"), max_size=6
)
PROVIDER = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c"]),
        "url": st.sampled_from(["http://h", "https://h/${X}", "http://h:1/v2/x"]),
    },
    optional={
        "ws_url": st.sampled_from(["ws://h", "wss://h/${X}"]),
        "priority": st.integers(0, 3),
        "archival": st.booleans(),
        "api_key": st.sampled_from(["k", "${X}"]),
        "headers": st.dictionaries(st.sampled_from(["X-A", "X-B"]), HEADER_VALUES, max_size=2),
    },
)
BREAKER = st.fixed_dictionaries(
    {},
    optional={
        "failure_threshold": st.integers(1, 10),
        "recovery_timeout_ms": st.integers(1, 1000),
        "max_recovery_timeout_ms": st.integers(60_000, 10**6),
    },
)
CHAIN = st.fixed_dictionaries(
    {"providers": st.lists(PROVIDER, min_size=1, max_size=3, unique_by=lambda p: p["id"])},
    optional={
        "aliases": st.lists(st.sampled_from(["p", "q"]), unique=True),
        "default_strategy": st.sampled_from(STRATEGY_NAMES),
        "circuit_breaker": BREAKER,
        "block_time_ms": st.integers(1, 10**4),
    },
)


def numbered(chains: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Give chains distinct ids and make aliases distinct across chains."""
    return {
        name: chain
        | {"chain_id": 100 + n, "aliases": [f"{name}-{a}" for a in chain.get("aliases", [])]}
        for n, (name, chain) in enumerate(chains.items())
    }


CHAINS = st.dictionaries(st.sampled_from(["x", "y", "z"]), CHAIN, min_size=1).map(numbered)
VALID = st.fixed_dictionaries(
    {"chains": CHAINS},
    optional={
        "server": st.fixed_dictionaries({}, optional={"port": st.integers(1, 65535)}),
        "routing": st.fixed_dictionaries(
            {},
            optional={
                "default_strategy": st.sampled_from(STRATEGY_NAMES),
                "lw_beta": st.floats(0, 10),
                "method_deadlines_ms": st.dictionaries(
                    st.sampled_from(["eth_call"]), st.integers(1, 10**5)
                ),
            },
        ),
        "circuit_breaker": BREAKER,
        "profiles": st.dictionaries(
            st.sampled_from(["team", "other"]), st.fixed_dictionaries({"chains": CHAINS})
        ),
    },
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a parsed document."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    found = []
    for key, item in items:
        found.append((*prefix, key))
        found.extend(paths(item, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one value replaced, one key removed or one key added."""
    tree: dict[str, Any] = copy.deepcopy(draw(VALID))
    path = draw(st.sampled_from(paths(tree)))
    parent: Any = tree
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(LEAF)
    elif action == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(KEYS)] = draw(LEAF)
    else:
        parent.append(draw(LEAF))
    return tree


LEAF = SCALARS | st.dates() | st.lists(SCALARS, max_size=2)

ENV = {"X": "x"}

# Kept to 60 examples each so the suite stays fast (each test is still over 0.25 s).
pytestmark = pytest.mark.slow
few = settings(max_examples=60)


def walk_then_convert(tree: dict[str, Any]) -> None:
    """The walk and msgspec agree: no problems found means ``convert`` succeeds."""
    walker = Walker(ENV)
    substituted = walker.check(dict(tree), msgspec.inspect.type_info(SettingsFile), ())
    cross_check(substituted if isinstance(substituted, dict) else {}, walker.report)
    if not walker.problems:
        msgspec.convert(substituted, SettingsFile)  # raises ValidationError if the walk missed one
    with contextlib.suppress(ConfigError):
        settings_from_dict(tree, env=ENV)


@few
@given(VALID)
def test_valid_documents_load_and_every_chain_and_provider_resolves(tree: dict[str, Any]) -> None:
    settings = settings_from_dict(tree, env=ENV)
    assert parse_settings(to_toml(tree), env=ENV) == settings
    for slug, spec in [("default", tree), *tree.get("profiles", {}).items()]:
        profile = settings.profile(slug)
        assert profile is not None
        for name, chain_spec in spec["chains"].items():
            chain = profile.chains[name]
            for ident in [name, str(chain_spec["chain_id"]), *chain_spec["aliases"]]:
                assert profile.resolve_chain(ident) is chain
            for provider in chain_spec["providers"]:
                found = chain.provider(provider["id"])
                assert found is not None
                assert found.url == provider["url"].replace("${X}", ENV["X"])


@few
@given(mutated())
def test_mutated_documents_load_or_raise_config_error(tree: dict[str, Any]) -> None:
    walk_then_convert(tree)


@few
@given(DOCUMENTS)
def test_arbitrary_documents_load_or_raise_config_error(tree: dict[str, Any]) -> None:
    walk_then_convert(tree)


@few
@given(mutated() | DOCUMENTS)
def test_arbitrary_toml_text_loads_or_raises_config_error(tree: dict[str, Any]) -> None:
    with contextlib.suppress(ConfigError):
        parse_settings(to_toml(tree), env=ENV)


def to_toml(tree: dict[str, Any]) -> str:
    """A tiny TOML writer: every top-level key as an inline value."""
    return "".join(f"{quote(key)} = {inline(value)}\n" for key, value in tree.items())


def inline(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(inline(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{quote(key)} = {inline(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(value)
