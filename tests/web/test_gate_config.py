"""The gate's settings: [auth], [rate_limit], per-profile limits, trusted proxies; and reloads."""

from __future__ import annotations

import hashlib

import pytest

from lasso.config import ConfigError, diff_settings, parse_settings

CHAIN = """
[chains.testnet]
chain_id = 31337
providers = [ { id = "p1", url = "http://p1.invalid" } ]
"""
TEAM = """
[profiles.team.chains.teamnet]
chain_id = 5
providers = [ { id = "t1", url = "http://t1.invalid" } ]
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text + CHAIN, env=env or {})
    return [str(p) for p in caught.value.problems]


def test_defaults_are_off() -> None:
    settings = parse_settings(CHAIN, env={})
    assert settings.auth.api_keys == () and not settings.auth.protect_observability
    limits = settings.rate_limit
    assert limits.rps is None and limits.burst is None
    assert limits.max_ws_per_client is None and limits.max_inflight_per_client is None
    assert limits.max_clients == 50_000
    assert settings.server.trusted_proxies == ()


def test_keys_in_the_clear_from_the_environment_and_hashed() -> None:
    digest = hashlib.sha256(b"ci-key").hexdigest()
    text = f"""
[auth]
protect_observability = true
api_keys = [
  {{ name = "team-a", key = "${{TEAM_A_KEY}}", rps = 100, burst = 200 }},
  {{ name = "ci", sha256 = "{digest.upper()}" }},
]
[rate_limit]
rps = 10
burst = 20
max_ws_per_client = 4
max_inflight_per_client = 8
max_clients = 1000
[server]
trusted_proxies = ["10.0.0.0/8", "::1"]
"""
    settings = parse_settings(
        text + CHAIN + TEAM + "[profiles.team.rate_limit]\nrps = 1.5\n",
        env={"TEAM_A_KEY": "s3cret-from-env"},
    )
    team_a, ci = settings.auth.api_keys
    assert team_a.key == "s3cret-from-env" and team_a.rps == 100 and team_a.burst == 200
    assert ci.sha256 == digest.upper() and ci.key is None
    assert "s3cret" not in repr(team_a)
    assert settings.rate_limit.rps == 10 and settings.rate_limit.max_clients == 1000
    assert settings.server.trusted_proxies == ("10.0.0.0/8", "::1")
    team = settings.profile("team")
    assert team is not None and team.rate_limit is not None and team.rate_limit.rps == 1.5
    assert settings.default_profile.rate_limit is None


def test_bad_gate_settings_are_reported_each_with_its_path_and_no_secret() -> None:
    text = """
[auth]
api_keys = [
  { name = "a", key = "first-key", sha256 = "00" },
  { name = "b" },
  { name = "a", key = "has space" },
  { name = "c", key = "dup-key" },
  { name = "d", sha256 = "{dup}" },
  { name = "e", key = "${MISSING}" },
]
[rate_limit]
burst = 5
rps = 0
[server]
trusted_proxies = ["10.0.0.0/33", "proxy.example"]
""".replace("{dup}", hashlib.sha256(b"dup-key").hexdigest())
    found = problems(text)
    assert found == [
        "auth.api_keys[0]: give exactly one of key (the key itself) or sha256 (its digest)",
        "auth.api_keys[0].sha256: must be the 64 hex digits of a SHA-256 digest",
        "auth.api_keys[1]: give exactly one of key (the key itself) or sha256 (its digest)",
        'auth.api_keys[2].name: duplicate key name "a" (first at 0)',
        "auth.api_keys[2].key: must be printable ASCII without spaces",
        "auth.api_keys[4].sha256: the same key as auth.api_keys[3]",
        "auth.api_keys[5].key: environment variable MISSING is not set",
        "rate_limit.rps: must be at least 0.001, got 0",
        "server.trusted_proxies[0]: must be an IP address or CIDR network (10.0.0.0/8, ::1), "
        'got "10.0.0.0/33"',
        "server.trusted_proxies[1]: must be an IP address or CIDR network (10.0.0.0/8, ::1), "
        'got "proxy.example"',
    ]
    assert not any("first-key" in p or "has space" in p for p in found)


def test_protecting_observability_without_any_key_is_an_error() -> None:
    assert problems("[auth]\nprotect_observability = true\n") == [
        "auth.protect_observability: needs at least one key in auth.api_keys "
        "(no one could see /metrics otherwise)"
    ]


def test_burst_without_rps_is_an_error() -> None:
    assert problems("[rate_limit]\nburst = 5\n") == [
        "rate_limit.burst: burst needs rps (the refill rate) beside it"
    ]


def test_a_reload_sees_key_and_limit_changes_as_live() -> None:
    base = '[auth]\napi_keys = [ { name = "a", key = "key-one" } ]\n'
    old = parse_settings(base + CHAIN + TEAM, env={})
    new = parse_settings(
        base.replace("key-one", "key-two")
        + "[rate_limit]\nrps = 5\n"
        + CHAIN
        + TEAM
        + "[profiles.team.rate_limit]\nrps = 1\n",
        env={},
    )
    diff = diff_settings(old, new)
    assert set(diff.live) == {"auth.api_keys", "rate_limit.rps", "profiles.team.rate_limit"}
    assert not diff.empty and diff.restart_only == ()
    assert "key-one" not in " ".join(diff.lines()) and "key-two" not in " ".join(diff.lines())
