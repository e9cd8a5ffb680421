"""Every settings key has a reload rule: the schema walk that keeps a new key from being forgotten."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

from lasso.config import (
    ChainConfig,
    ChainSpec,
    CircuitBreakerConfig,
    CircuitBreakerOverride,
    Settings,
    SettingsFile,
)
from lasso.config.classify import RULES, Kind, Rule, restart_only_keys, rule, section_types

REPO = Path(__file__).resolve().parents[2]
ROOTS: tuple[type[msgspec.Struct], ...] = (SettingsFile, Settings)


def _structs_in(t: mi.Type) -> Iterator[type[msgspec.Struct]]:
    """The Struct types a field type holds: directly, optionally, or in a collection."""
    if isinstance(t, mi.Metadata):
        yield from _structs_in(t.type)
    elif isinstance(t, mi.StructType):
        yield t.cls
    elif isinstance(t, mi.UnionType):
        for option in t.types:
            yield from _structs_in(option)
    elif isinstance(t, mi.DictType):
        yield from _structs_in(t.value_type)
    elif isinstance(t, mi.ListType | mi.VarTupleType):
        yield from _structs_in(t.item_type)


def reachable(roots: tuple[type[msgspec.Struct], ...]) -> dict[type[msgspec.Struct], mi.StructType]:
    """Every Struct type reachable from ``roots``, with its inspected fields."""
    seen: dict[type[msgspec.Struct], mi.StructType] = {}
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        seen[cls] = info
        for field in info.fields:
            todo.extend(_structs_in(field.type))
    return seen


def unclassified(
    roots: tuple[type[msgspec.Struct], ...],
    rules: Mapping[type[msgspec.Struct], Mapping[str, Rule]],
) -> list[str]:
    """``Struct.field`` for each field of the schema with no rule."""
    return [
        f"{cls.__name__}.{field.name}"
        for cls, info in reachable(roots).items()
        for field in info.fields
        if field.name not in rules.get(cls, {})
    ]


def test_every_field_of_every_settings_struct_is_classified() -> None:
    assert unclassified(ROOTS, RULES) == []


def test_the_table_names_no_struct_or_field_that_does_not_exist() -> None:
    structs = reachable(ROOTS)
    assert set(RULES) == set(structs)
    for cls, fields in RULES.items():
        assert set(fields) == set(cls.__struct_fields__), cls.__name__


class Extra(msgspec.Struct, frozen=True):
    knob: int = 1


class NewServer(msgspec.Struct, frozen=True):
    host: str = ""
    new_limit: int = 1
    extra: Extra | None = None


class Root(msgspec.Struct, frozen=True):
    server: NewServer
    chains: dict[str, tuple[NewServer, ...]] = {}


def test_the_walk_finds_a_planted_unclassified_key() -> None:
    """The check can fail: a new key in a nested table, and a new nested table."""
    rules: dict[type[msgspec.Struct], Mapping[str, Rule]] = {
        Root: {"server": rule(Settings, "server"), "chains": rule(Settings, "profiles")},
        NewServer: {"host": rule(Settings, "server")},
    }
    assert sorted(unclassified((Root,), rules)) == [
        "Extra.knob",
        "NewServer.extra",
        "NewServer.new_limit",
    ]


def test_nested_and_items_rules_are_on_struct_valued_fields() -> None:
    for cls, info in reachable(ROOTS).items():
        for field in info.fields:
            kind = RULES[cls][field.name].kind
            holds_structs = bool(list(_structs_in(field.type)))
            assert holds_structs == (kind in (Kind.NESTED, Kind.ITEMS)), f"{cls}.{field.name}"


def test_restart_only_keys_are_only_in_top_level_tables() -> None:
    tops = set(section_types().values())
    for cls, fields in RULES.items():
        for name, each in fields.items():
            if each.kind is Kind.RESTART:
                assert cls in tops, f"{cls.__name__}.{name}"
    assert set(restart_only_keys()) == {
        "server.host",
        "server.port",
        "server.ws_ping_interval_ms",
        "server.ws_max_frame_bytes",
        "server.max_connections",
        "server.workers",  # the worker processes start once (lasso.workers)
        "metrics.enabled",  # [metrics]: the observers and histograms are built at start
        "metrics.latency_buckets_ms",
        "metrics.extra_methods",
        "shared.redis_url",  # [shared]: the Redis store is created once, at start
        "shared.timeout_ms",
        "shared.key_prefix",
    }


def test_the_file_and_the_resolved_view_agree() -> None:
    for name in ChainSpec.__struct_fields__:
        assert RULES[ChainSpec][name] == RULES[ChainConfig][name], name
    assert CircuitBreakerOverride.__struct_fields__ == CircuitBreakerConfig.__struct_fields__
    for name in CircuitBreakerConfig.__struct_fields__:
        assert RULES[CircuitBreakerOverride][name] == RULES[CircuitBreakerConfig][name]
    for name in Settings.__struct_fields__:
        if name != "profiles":
            assert RULES[SettingsFile][name] == RULES[Settings][name]


def test_an_unknown_field_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match=r"Settings\.nope has no reload rule"):
        rule(Settings, "nope")


def test_the_docs_list_exactly_the_restart_only_keys() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    table = text[text.index("**Restart-only keys**") : text.index("A file that changes nothing")]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    listed = {
        key for row in rows for key in re.findall(r"`((?:server|metrics|shared)\.[a-z_]+)`", row)
    }
    assert listed == set(restart_only_keys())
