"""Loading valid settings: defaults, the shipped file, env substitution and lookups."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import msgspec
import pytest

from lasso.config import (
    STRATEGY_NAMES,
    ChainConfig,
    CircuitBreakerConfig,
    ConfigError,
    HedgeConfig,
    ProviderConfig,
    RoutingConfig,
    ServerConfig,
    Settings,
    load_settings,
    parse_settings,
    settings_from_dict,
)
from lasso.core.router import Strategy

REPO = pathlib.Path(__file__).resolve().parents[2]

MINIMAL = """
[chains.devnet]
chain_id = 31337

[[chains.devnet.providers]]
id = "a"
url = "http://127.0.0.1:8545"
"""


def parse(text: str, env: dict[str, str] | None = None) -> Settings:
    return parse_settings(text, env=env or {})


def devnet(settings: Settings) -> ChainConfig:
    chain = settings.default_profile.resolve_chain("devnet")
    assert chain is not None
    return chain


def only_problem(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, env)
    (problem,) = caught.value.problems
    return str(problem)


def test_minimal_file_loads() -> None:
    settings = parse(MINIMAL)
    chain = devnet(settings)
    assert chain.name == "devnet"
    assert chain.chain_id == 31337
    assert chain.providers == (ProviderConfig(id="a", url="http://127.0.0.1:8545"),)
    assert list(settings.profiles) == ["default"]


DEFAULTS: list[tuple[str, object]] = [
    ("server.host", "127.0.0.1"),
    ("server.port", 4000),
    ("server.max_body_bytes", 8_000_000),
    ("server.max_batch", 50),
    ("server.batch_concurrency", 4),
    ("server.max_meta_header_bytes", 4096),
    ("server.shutdown_grace_ms", 10_000),
    ("routing.default_strategy", "load-balanced"),
    ("routing.max_attempts", 3),
    ("routing.lw_beta", 3.0),
    ("routing.exploration_share", 0.05),
    ("routing.method_deadlines_ms", {}),
    ("routing.hedge.after_ms", None),
    ("routing.hedge.adaptive", False),
    ("routing.hedge.methods", ()),
    ("circuit_breaker.failure_threshold", 5),
    ("circuit_breaker.recovery_timeout_ms", 60_000),
    ("circuit_breaker.success_threshold", 2),
    ("circuit_breaker.timeout_threshold", 2),
    ("circuit_breaker.network_threshold", 3),
    ("circuit_breaker.max_recovery_timeout_ms", 600_000),
    ("chain.block_time_ms", 12_000),
    ("chain.aliases", ()),
    ("chain.default_strategy", "load-balanced"),
    ("chain.circuit_breaker", CircuitBreakerConfig()),
    ("chain.hedge", HedgeConfig()),
    ("provider.ws_url", None),
    ("provider.priority", 100),
    ("provider.archival", True),
    ("provider.headers", {}),
    ("provider.api_key", None),
]


@pytest.mark.parametrize(("where", "expected"), DEFAULTS)
def test_defaults(where: str, expected: object) -> None:
    settings = parse(MINIMAL)
    chain = devnet(settings)
    roots: dict[str, Any] = {
        "server": settings.server,
        "routing": settings.routing,
        "circuit_breaker": settings.circuit_breaker,
        "chain": chain,
        "provider": chain.providers[0],
    }
    root, *names = where.split(".")
    value = roots[root]
    for name in names:
        value = getattr(value, name)
    assert value == expected
    assert type(value) is type(expected)


def test_every_key_can_be_set() -> None:
    settings = parse(
        MINIMAL
        + """
[server]
host = "0.0.0.0"
port = 8080
max_body_bytes = 1000
max_batch = 10
batch_concurrency = 2
max_meta_header_bytes = 100
shutdown_grace_ms = 0

[routing]
default_strategy = "fastest"
max_attempts = 5
lw_beta = 2          # an integer is accepted for a float
exploration_share = 0.0
method_deadlines_ms = { eth_getLogs = 8000 }
hedge = { after_ms = 250 }

[chains.eth]
chain_id = 1
block_time_ms = 12000
aliases = ["mainnet"]
default_strategy = "priority"

[chains.eth.circuit_breaker]
failure_threshold = 9

[[chains.eth.providers]]
id = "p"
url = "https://eth.example/rpc"
ws_url = "wss://eth.example/ws"
priority = 0
archival = false
headers = { X-Client = "lasso" }
api_key = "k"
"""
    )
    assert settings.server == ServerConfig(
        host="0.0.0.0",
        port=8080,
        max_body_bytes=1000,
        max_batch=10,
        batch_concurrency=2,
        max_meta_header_bytes=100,
        shutdown_grace_ms=0,
    )
    assert settings.routing == RoutingConfig(
        default_strategy="fastest",
        max_attempts=5,
        lw_beta=2.0,
        exploration_share=0.0,
        method_deadlines_ms={"eth_getLogs": 8000},
        hedge=HedgeConfig(after_ms=250),
    )
    assert type(settings.routing.lw_beta) is float
    eth = settings.default_profile.resolve_chain("eth")
    assert eth == ChainConfig(
        name="eth",
        chain_id=1,
        block_time_ms=12000,
        aliases=("mainnet",),
        default_strategy="priority",
        circuit_breaker=CircuitBreakerConfig(failure_threshold=9),
        hedge=HedgeConfig(after_ms=250),
        providers=(
            ProviderConfig(
                id="p",
                url="https://eth.example/rpc",
                ws_url="wss://eth.example/ws",
                priority=0,
                archival=False,
                headers={"X-Client": "lasso"},
                api_key="k",
            ),
        ),
    )
    # A chain without its own strategy follows [routing].
    assert devnet(settings).default_strategy == "fastest"


def test_the_shipped_settings_file_loads() -> None:
    settings = load_settings(REPO / "settings.toml", env={})
    profile = settings.default_profile
    assert list(profile.chains) == ["devnet", "ethereum", "base"]
    chain = profile.resolve_chain("anvil")
    assert chain is not None
    assert (chain.name, chain.chain_id, chain.block_time_ms) == ("devnet", 31337, 1000)
    assert [(p.id, p.url, p.ws_url, p.priority) for p in chain.providers] == [
        (f"devnet-{n}", f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", n)
        for n, port in ((1, 8545), (2, 8546), (3, 8547))
    ]
    assert profile.resolve_chain("mainnet") is profile.resolve_chain("1")
    assert profile.resolve_chain("8453") is profile.chains["base"]
    for chain in profile.chains.values():
        assert all(p.api_key is None and not p.headers for p in chain.providers)
    # The shipped tables spell out the code defaults; keep them in step.
    assert settings.server == ServerConfig()
    assert settings.routing == RoutingConfig()
    assert settings.circuit_breaker == CircuitBreakerConfig()


def test_load_settings_reads_the_environment_by_default(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL.replace('"http://127.0.0.1:8545"', '"http://${LASSO_TEST_HOST}"'))
    monkeypatch.setenv("LASSO_TEST_HOST", "node.example")
    assert devnet(load_settings(path)).providers[0].url == "http://node.example"
    assert devnet(load_settings(os.fspath(path), env={"LASSO_TEST_HOST": "b"})).providers[
        0
    ].url == ("http://b")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read {path}: [Errno 2] No such file or directory: '{path}'"),
        (b"\xff\xfe", "cannot read {path}: 'utf-8' codec can't decode byte 0xff in position 0"),
    ],
)
def test_load_settings_reports_an_unreadable_file(
    tmp_path: pathlib.Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "s.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    (problem,) = caught.value.problems
    assert problem.path == ""
    assert problem.message.startswith(message.format(path=path))
    assert caught.value.source == str(path)


# --- environment substitution ----------------------------------------------------

KEYED = """
[chains.devnet]
chain_id = 31337

[[chains.devnet.providers]]
id = "a"
url = "http://127.0.0.1:8545"

[[chains.devnet.providers]]
id = "keyed"
url = "https://eth-mainnet.g.alchemy.com/v2/${ALCHEMY_KEY}"
ws_url = "wss://eth-mainnet.g.alchemy.com/v2/${ALCHEMY_KEY}"
api_key = "${API_KEY}"
headers = { X-Team = "${TEAM}-$${literal}", X-Price = "$5" }
"""


def test_env_substitution_in_every_string() -> None:
    env = {"ALCHEMY_KEY": "k3y", "API_KEY": "s3cret", "TEAM": "blue"}
    provider = devnet(parse(KEYED, env)).provider("keyed")
    assert provider == ProviderConfig(
        id="keyed",
        url="https://eth-mainnet.g.alchemy.com/v2/k3y",
        ws_url="wss://eth-mainnet.g.alchemy.com/v2/k3y",
        api_key="s3cret",
        headers={"X-Team": "blue-${literal}", "X-Price": "$5"},
    )


def test_unresolved_variables_are_reported_at_each_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(KEYED, {"TEAM": "blue"})
    assert [str(problem) for problem in caught.value.problems] == [
        "chains.devnet.providers[1].url: environment variable ALCHEMY_KEY is not set",
        "chains.devnet.providers[1].ws_url: environment variable ALCHEMY_KEY is not set",
        "chains.devnet.providers[1].api_key: environment variable API_KEY is not set",
    ]


@pytest.mark.parametrize(
    ("value", "env", "result"),
    [
        ("http://${HOST}:${PORT}", {"HOST": "h", "PORT": "1"}, "http://h:1"),
        ("http://h/$${X}", {}, "http://h/${X}"),
        ("http://h/$$${X}", {"X": "y"}, "http://h/$${X}"),  # "$", then "$${" -> "${", then "X}"
        ("http://h/$X/$", {}, "http://h/$X/$"),
        ("http://${EMPTY}h", {"EMPTY": ""}, "http://h"),
        ("http://${A}", {"A": "${B}", "B": "x"}, "http://${B}"),  # no recursive expansion
    ],
)
def test_substitution_rules(value: str, env: dict[str, str], result: str) -> None:
    text = MINIMAL.replace('"http://127.0.0.1:8545"', f'"{value}"')
    assert devnet(parse(text, env)).providers[0].url == result


@pytest.mark.parametrize(
    ("value", "env", "problem"),
    [
        ("http://${A}${B}", {}, "environment variable A is not set"),
        ("http://${1X}", {}, "malformed ${...} reference (write $${ for a literal ${)"),
        ("http://${X", {}, "malformed ${...} reference (write $${ for a literal ${)"),
        (
            "${URL}",
            {"URL": "ftp://h"},
            'must be a URL with scheme http or https and a host, got "ftp://h"',
        ),
    ],
)
def test_substitution_problems(value: str, env: dict[str, str], problem: str) -> None:
    text = MINIMAL.replace('"http://127.0.0.1:8545"', f'"{value}"')
    with pytest.raises(ConfigError) as caught:
        parse(text, env)
    assert str(caught.value.problems[0]) == f"chains.devnet.providers[0].url: {problem}"


def test_every_unresolved_variable_in_one_string_is_reported() -> None:
    text = MINIMAL.replace('"http://127.0.0.1:8545"', '"http://${A}${B}"')
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert [problem.message for problem in caught.value.problems] == [
        "environment variable A is not set",
        "environment variable B is not set",
    ]


def test_substitution_applies_to_choices_too() -> None:
    text = MINIMAL + '[routing]\ndefault_strategy = "${STRATEGY}"\n'
    assert parse(text, {"STRATEGY": "priority"}).routing.default_strategy == "priority"


def test_environment_values_cannot_change_the_file_structure() -> None:
    text = MINIMAL + 'api_key = "${KEY}"\n'
    settings = parse(text, {"KEY": 'k", priority = 1 # '})
    assert devnet(settings).providers[0].api_key == 'k", priority = 1 # '
    assert devnet(settings).providers[0].priority == 100


@pytest.mark.parametrize("value", ["k\nX-Injected: 1", "k\r", "k\x00"])
def test_api_key_cannot_inject_header_lines(value: str) -> None:
    text = MINIMAL + 'api_key = "${KEY}"\n'
    assert only_problem(text, {"KEY": value}) == (
        "chains.devnet.providers[0].api_key: must not contain line breaks or NUL"
    )


# --- lookups -----------------------------------------------------------------------

PROFILES = (
    MINIMAL
    + """
[chains.ethereum]
chain_id = 1
aliases = ["eth", "mainnet"]
providers = [{ id = "p1", url = "https://one.example" }, { id = "p2", url = "https://two.example" }]

[profiles.team.chains.ethereum]
chain_id = 1
aliases = ["eth"]
default_strategy = "round-robin"
providers = [{ id = "team-node", url = "https://team.example" }]

[profiles.team.chains.sepolia]
chain_id = 11155111
providers = [{ id = "s", url = "https://sepolia.example" }]
"""
)


@pytest.mark.parametrize(
    ("ident", "name"),
    [
        ("ethereum", "ethereum"),
        ("eth", "ethereum"),
        ("mainnet", "ethereum"),
        ("1", "ethereum"),
        ("devnet", "devnet"),
        ("31337", "devnet"),
        ("01", None),
        ("0x1", None),
        ("1.0", None),
        (" 1", None),
        ("ETH", None),
        ("sepolia", None),  # only in the team profile
        ("", None),
    ],
)
def test_resolve_chain_by_name_alias_or_decimal_id(ident: str, name: str | None) -> None:
    chain = parse(PROFILES).default_profile.resolve_chain(ident)
    assert (chain.name if chain else None) == name


def test_profiles_are_isolated() -> None:
    settings = parse(PROFILES)
    assert list(settings.profiles) == ["default", "team"]
    assert settings.profile("default") is settings.default_profile
    assert settings.profile("nope") is None
    team = settings.profile("team")
    assert team is not None
    assert team.slug == "team"
    assert list(team.chains) == ["ethereum", "sepolia"]
    assert team.resolve_chain("mainnet") is None
    assert team.resolve_chain("devnet") is None
    team_eth, default_eth = team.resolve_chain("1"), settings.default_profile.resolve_chain("1")
    assert team_eth is not None
    assert default_eth is not None
    assert [p.id for p in team_eth.providers] == ["team-node"]
    assert [p.id for p in default_eth.providers] == ["p1", "p2"]
    assert (team_eth.default_strategy, default_eth.default_strategy) == (
        "round-robin",
        "load-balanced",
    )


def test_provider_lookup() -> None:
    chain = parse(PROFILES).default_profile.chains["ethereum"]
    assert chain.provider("p2") is chain.providers[1]
    assert chain.provider("team-node") is None
    assert chain.provider("P2") is None


def test_lookups_survive_a_copy() -> None:
    chain = parse(PROFILES).default_profile.chains["ethereum"]
    copied = msgspec.structs.replace(chain, aliases=())
    assert copied.provider("p1") is chain.providers[0]


# --- circuit breaker override -------------------------------------------------------

BREAKER = (
    PROFILES
    + """
[circuit_breaker]
failure_threshold = 7
recovery_timeout_ms = 30000

[chains.ethereum.circuit_breaker]
recovery_timeout_ms = 1000
success_threshold = 4

[profiles.team.chains.sepolia.circuit_breaker]
max_recovery_timeout_ms = 30000
"""
)


def test_chain_breaker_overrides_per_key_and_inherits_the_rest() -> None:
    settings = parse(BREAKER)
    top = CircuitBreakerConfig(failure_threshold=7, recovery_timeout_ms=30_000)
    assert settings.circuit_breaker == top
    default = settings.default_profile
    assert default.chains["devnet"].circuit_breaker == top
    assert default.chains["ethereum"].circuit_breaker == CircuitBreakerConfig(
        failure_threshold=7, recovery_timeout_ms=1000, success_threshold=4
    )
    team = settings.profile("team")
    assert team is not None
    assert team.chains["ethereum"].circuit_breaker == top
    assert team.chains["sepolia"].circuit_breaker == CircuitBreakerConfig(
        failure_threshold=7, recovery_timeout_ms=30_000, max_recovery_timeout_ms=30_000
    )


# --- secrets ---------------------------------------------------------------------------


def test_repr_never_shows_credentials() -> None:
    env = {"ALCHEMY_KEY": "AbCdEf0123456789AbCdEf0123", "API_KEY": "s3cret", "TEAM": "blue"}
    settings = parse(KEYED, env)
    for shown in (repr(settings), repr(devnet(settings).provider("keyed")), str(settings)):
        assert "s3cret" not in shown
        assert "AbCdEf0123456789" not in shown
        assert "blue" not in shown
    assert repr(devnet(settings).provider("keyed")) == (
        "ProviderConfig(id='keyed', url='https://eth-mainnet.g.alchemy.com/v2/***', "
        "ws_url='wss://eth-mainnet.g.alchemy.com/v2/***', priority=100, archival=True, "
        "headers={'X-Team': '***', 'X-Price': '***'}, api_key='***', "
        "unsupported_methods=(), max_logs_block_range=None, supports_batch=True, "
        "subscriptions=True, http_client='lasso')"
    )


def test_strategy_names() -> None:
    assert STRATEGY_NAMES == (
        "fastest",
        "load-balanced",
        "latency-weighted",
        "round-robin",
        "priority",
    )
    # The router's enum must accept every name the config does, and no other.
    assert {strategy.value for strategy in Strategy} == set(STRATEGY_NAMES)


def test_settings_from_dict_takes_parsed_toml() -> None:
    provider = {"id": "a", "url": "http://${H}"}
    tree = {"chains": {"x": {"chain_id": 5, "providers": [provider]}}}
    chain = settings_from_dict(tree, env={"H": "h"}).default_profile.chains["x"]
    assert chain.providers[0].url == "http://h"
    assert provider["url"] == "http://${H}"  # the input is left alone
