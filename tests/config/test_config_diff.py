"""The settings diff: what a reload must add, remove, replace, retune, apply live or leave for
a restart, on many pairs of configurations."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from lasso.config import Settings, parse_settings
from lasso.config.classify import RULES, Kind, section_types
from lasso.config.diff import (
    ChainChange,
    ChainRef,
    ProviderRetune,
    SettingsDiff,
    diff_settings,
    keep_running,
)

BASE = """
[server]
port = 4000

[circuit_breaker]
failure_threshold = 5

[chains.devnet]
chain_id = 31337
block_time_ms = 1000
providers = [
  { id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid", priority = 1 },
  { id = "b", url = "http://b.invalid", priority = 2, headers = { x-team = "one" } },
  { id = "c", url = "http://c.invalid", api_key = "k1" },
]

[chains.base]
chain_id = 8453
circuit_breaker = { failure_threshold = 9 }
providers = [ { id = "a", url = "http://base-a.invalid" } ]

[profiles.team.chains.teamnet]
chain_id = 5
providers = [ { id = "t1", url = "http://t1.invalid" } ]
"""


def load(text: str) -> Settings:
    return parse_settings(text, env={})


def diff(new_text: str, old_text: str = BASE) -> SettingsDiff:
    return diff_settings(load(old_text), load(new_text))


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def only_chain_change(result: SettingsDiff) -> ChainChange:
    (change,) = result.chains_changed
    assert msgspec.structs.replace(result, chains_changed=()) == SettingsDiff()
    return change


# -- nothing ---------------------------------------------------------------------------


def test_the_same_file_is_no_change() -> None:
    result = diff(BASE)
    assert result == SettingsDiff()
    assert result.empty
    assert result.summary() == "no change"
    assert result.lines() == []


def test_reordered_tables_and_equal_values_are_no_change() -> None:
    moved = BASE.replace("[server]\nport = 4000\n", "") + "\n[server]\nport = 4000\n"
    assert diff(edit("failure_threshold = 5", "failure_threshold = 5 # same", moved)).empty


# -- profiles and chains -------------------------------------------------------------------


def test_a_profile_added_brings_its_chains() -> None:
    result = diff(
        BASE
        + '[profiles.ops.chains.opsnet]\nchain_id = 7\nproviders = [{id = "o", url = "http://o.invalid"}]\n'
    )
    assert result.profiles_added == ("ops",)
    assert result.chains_added == (ChainRef("ops", "opsnet"),)
    assert result.chains_added[0].path == "profiles.ops.chains.opsnet"
    assert result.summary() == "profiles: 1 added; chains: 1 added"


def test_a_profile_removed_takes_its_chains() -> None:
    result = diff(BASE[: BASE.index("[profiles.team")])
    assert result.profiles_removed == ("team",)
    assert result.chains_removed == (ChainRef("team", "teamnet"),)
    assert result.lines() == ["profile team removed", "profiles.team.chains.teamnet removed"]


def test_a_chain_added_and_one_removed() -> None:
    without_base = edit(
        '[chains.base]\nchain_id = 8453\ncircuit_breaker = { failure_threshold = 9 }\nproviders = [ { id = "a", url = "http://base-a.invalid" } ]\n',
        '[chains.op]\nchain_id = 10\nproviders = [ { id = "a", url = "http://op.invalid" } ]\n',
    )
    result = diff(without_base)
    assert result.chains_added == (ChainRef("default", "op"),)
    assert result.chains_removed == (ChainRef("default", "base"),)
    assert result.chains_added[0].path == "chains.op"
    assert result.profiles_added == result.profiles_removed == ()


def test_a_new_chain_id_replaces_the_chain() -> None:
    result = diff(edit("chain_id = 8453", "chain_id = 84532"))
    assert result.chains_replaced == (ChainRef("default", "base"),)
    assert result.chains_changed == ()
    assert result.lines() == ["chains.base replaced (chain_id changed)"]


def test_a_chain_replaced_ignores_its_other_changes() -> None:
    text = edit("chain_id = 8453", 'chain_id = 84532\naliases = ["b"]')
    assert diff(text).chains_replaced == (ChainRef("default", "base"),)


def test_the_same_chain_name_in_two_profiles_is_two_chains() -> None:
    text = (
        BASE
        + '[profiles.ops.chains.devnet]\nchain_id = 31337\nproviders = [{id = "a", url = "http://a.invalid"}]\n'
    )
    changed = edit(
        'id = "a", url = "http://a.invalid", ws_url',
        'id = "a", url = "http://a2.invalid", ws_url',
        text,
    )
    change = only_chain_change(diff(changed, text))
    assert change.ref == ChainRef("default", "devnet")
    assert change.providers_replaced == ("a",)


# -- providers -------------------------------------------------------------------------------


def test_a_provider_added_and_one_removed() -> None:
    text = edit(
        '  { id = "c", url = "http://c.invalid", api_key = "k1" },\n',
        '  { id = "d", url = "http://d.invalid" },\n',
    )
    change = only_chain_change(diff(text))
    assert change.ref == ChainRef("default", "devnet")
    assert change.providers_added == ("d",)
    assert change.providers_removed == ("c",)
    assert change.providers_to_stop == ("c",)
    assert change.providers_to_start == ("d",)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('url = "http://a.invalid"', 'url = "http://a-new.invalid"'),
        ('ws_url = "ws://a.invalid"', 'ws_url = "wss://a.invalid"'),
        ('ws_url = "ws://a.invalid", ', ""),
        ('url = "http://b.invalid"', 'url = "http://b.invalid", ws_url = "ws://b.invalid"'),
        ('x-team = "one"', 'x-team = "two"'),
        ('x-team = "one"', 'x-team = "one", x-more = "1"'),
        ('api_key = "k1"', 'api_key = "k2"'),
        ('api_key = "k1"', 'headers = { authorization = "Bearer k1" }'),
    ],
)
def test_a_changed_endpoint_or_credential_replaces_the_provider(old: str, new: str) -> None:
    change = only_chain_change(diff(edit(old, new)))
    (replaced,) = change.providers_replaced
    assert change.providers_added == change.providers_removed == ()
    assert change.providers_retuned == ()
    assert change.providers_to_stop == change.providers_to_start == (replaced,)
    assert "replaced (url, ws_url, headers or api_key changed)" in change_lines(change)


def change_lines(change: ChainChange) -> str:
    return "\n".join(SettingsDiff(chains_changed=(change,)).lines())


@pytest.mark.parametrize(
    ("old", "new", "fields"),
    [
        ("priority = 1", "priority = 7", ("priority",)),
        ('url = "http://c.invalid",', 'url = "http://c.invalid", archival = false,', ("archival",)),
        ("priority = 2", "priority = 3, archival = false", ("priority", "archival")),
    ],
)
def test_priority_and_archival_retune_in_place(old: str, new: str, fields: tuple[str, ...]) -> None:
    change = only_chain_change(diff(edit(old, new)))
    (retuned,) = change.providers_retuned
    assert retuned.fields == fields
    assert change.providers_to_stop == change.providers_to_start == ()


def test_a_retune_and_a_replacement_of_one_provider_is_a_replacement() -> None:
    change = only_chain_change(
        diff(
            edit(
                '"http://a.invalid", ws_url = "ws://a.invalid", priority = 1',
                '"http://z.invalid", ws_url = "ws://a.invalid", priority = 9',
            )
        )
    )
    assert change.providers_replaced == ("a",)
    assert change.providers_retuned == ()


def test_providers_reordered_is_reported_alone() -> None:
    text = BASE.replace(
        '  { id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid", priority = 1 },\n', ""
    ).replace(
        '  { id = "c", url = "http://c.invalid", api_key = "k1" },\n',
        '  { id = "c", url = "http://c.invalid", api_key = "k1" },\n'
        '  { id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid", priority = 1 },\n',
    )
    change = only_chain_change(diff(text))
    assert change.providers_reordered
    assert change == ChainChange(profile="default", chain="devnet", providers_reordered=True)


def test_many_provider_changes_at_once() -> None:
    text = BASE.replace("priority = 2", "priority = 5").replace('"k1"', '"k9"')
    text = text.replace(
        '  { id = "a", url = "http://a.invalid", ws_url = "ws://a.invalid", priority = 1 },\n',
        '  { id = "e", url = "http://e.invalid" },\n',
    )
    change = only_chain_change(diff(text))
    assert change.providers_added == ("e",)
    assert change.providers_removed == ("a",)
    assert change.providers_replaced == ("c",)
    assert change.providers_retuned == (ProviderRetune("b", ("priority",)),)
    assert change.providers_to_stop == ("a", "c")
    assert change.providers_to_start == ("c", "e")
    assert diff(text).summary() == (
        "chains: 1 changed; providers: 1 added, 1 removed, 1 replaced, 1 retuned"
    )


# -- live thresholds -------------------------------------------------------------------------


def test_a_top_level_breaker_change_reaches_every_chain_that_inherits_it() -> None:
    result = diff(edit("failure_threshold = 5", "failure_threshold = 3"))
    assert result.live == ("circuit_breaker.failure_threshold",)
    assert [c.ref for c in result.chains_changed] == [
        ChainRef("default", "devnet"),
        ChainRef("team", "teamnet"),
    ]  # base overrides failure_threshold, so its effective breaker is unchanged
    assert all(c.live == ("circuit_breaker.failure_threshold",) for c in result.chains_changed)


def test_a_per_chain_breaker_override_changes_that_chain_only() -> None:
    result = diff(
        edit("failure_threshold = 9 }", "failure_threshold = 9, recovery_timeout_ms = 5000 }")
    )
    assert result.live == ()
    change = only_chain_change(result)
    assert change.ref == ChainRef("default", "base")
    assert change.live == ("circuit_breaker.recovery_timeout_ms",)
    assert result.lines() == ["chains.base.circuit_breaker.recovery_timeout_ms changed"]


def test_removing_an_override_falls_back_to_the_top_level_value() -> None:
    change = only_chain_change(diff(edit("circuit_breaker = { failure_threshold = 9 }\n", "")))
    assert change.live == ("circuit_breaker.failure_threshold",)


def test_hedging_at_the_top_reaches_chains_and_a_chain_hedge_only_its_chain() -> None:
    result = diff(BASE + "\n[routing.hedge]\nafter_ms = 200\n")
    assert result.live == ("routing.hedge.after_ms",)
    assert {c.live for c in result.chains_changed} == {("hedge.after_ms",)}
    assert len(result.chains_changed) == 3
    chain_only = edit("block_time_ms = 1000", "block_time_ms = 1000\nhedge = { adaptive = true }")
    change = only_chain_change(diff(chain_only))
    assert (change.chain, change.live) == ("devnet", ("hedge.adaptive",))


@pytest.mark.parametrize(
    ("old", "new", "live"),
    [
        ("block_time_ms = 1000", "block_time_ms = 2000", ("block_time_ms",)),
        ("block_time_ms = 1000", 'block_time_ms = 1000\naliases = ["dev"]', ("aliases",)),
        (
            "block_time_ms = 1000",
            'block_time_ms = 1000\ndefault_strategy = "fastest"',
            ("default_strategy",),
        ),
    ],
)
def test_chain_keys_apply_live(old: str, new: str, live: tuple[str, ...]) -> None:
    change = only_chain_change(diff(edit(old, new)))
    assert change.live == live


def test_routing_deadlines_and_strategy_are_live() -> None:
    text = (
        BASE
        + '\n[routing]\ndefault_strategy = "priority"\nmethod_deadlines_ms = { eth_call = 900 }\n'
    )
    result = diff(text)
    assert result.live == ("routing.default_strategy", "routing.method_deadlines_ms")
    # every chain without its own strategy resolves to the new default
    assert {c.live for c in result.chains_changed} == {("default_strategy",)}


def _bumped(value: Any) -> Any:
    if value is None:  # an optional number, unset
        return 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return (*value, "eth_x")
    if isinstance(value, dict):
        return {**value, "eth_x": 1}
    raise AssertionError(f"no bump for {value!r}")


def _every_top_level_key() -> list[tuple[str, str, Kind]]:
    # A key with no rule is test_config_classify's failure to report, not a collection error.
    return [
        (section, field, each.kind)
        for section, struct in section_types().items()
        for field, each in RULES[struct].items()
        if each.kind is not Kind.NESTED
    ]


@pytest.mark.parametrize(("section", "field", "kind"), _every_top_level_key())
def test_every_top_level_key_lands_where_the_table_says(
    section: str, field: str, kind: Kind
) -> None:
    old = load(BASE)
    table = getattr(old, section)
    new = msgspec.structs.replace(
        old, **{section: msgspec.structs.replace(table, **{field: _bumped(getattr(table, field))})}
    )
    result = diff_settings(old, new)
    path = f"{section}.{field}"
    if kind is Kind.RESTART:
        assert result.restart_only == (path,)
        assert result.live == () and result.empty
    else:  # a collection inside a table ([auth] api_keys) changes as a whole, live
        assert kind in (Kind.LIVE, Kind.ITEMS)
        assert result.live == (path,)
        assert result.restart_only == ()


# -- restart-only ----------------------------------------------------------------------------


def test_restart_only_keys_are_reported_and_kept_at_their_running_values() -> None:
    text = edit(
        "port = 4000", 'port = 4001\nhost = "0.0.0.0"\nmax_batch = 9\nws_ping_interval_ms = 1000'
    )
    old, new = load(BASE), load(text)
    result = diff_settings(old, new)
    assert result.restart_only == ("server.host", "server.port", "server.ws_ping_interval_ms")
    assert result.live == ("server.max_batch",)
    assert not result.empty
    assert result.summary() == "1 live keys changed; 3 need a restart"
    published = keep_running(old, new)
    assert (published.server.host, published.server.port) == ("127.0.0.1", 4000)
    assert published.server.ws_ping_interval_ms == old.server.ws_ping_interval_ms
    assert published.server.max_batch == 9
    again = diff_settings(published, new)  # the next reload still says so
    assert again.restart_only == result.restart_only
    assert again.live == ()


def test_only_restart_only_changes_leave_nothing_to_apply() -> None:
    result = diff(edit("port = 4000", "port = 4001"))
    assert result.empty
    assert result.restart_only == ("server.port",)


def test_keep_running_without_restart_changes_is_the_new_settings() -> None:
    old, new = load(BASE), load(edit("failure_threshold = 5", "failure_threshold = 4"))
    assert keep_running(old, new) == new
