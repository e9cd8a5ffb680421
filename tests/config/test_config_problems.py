"""Every kind of configuration problem, reported with its exact path and message."""

from __future__ import annotations

import json

import pytest

from lasso.config import ConfigError, ConfigProblem, parse_settings

# A valid file; each case appends tables to it (TOML allows tables in any order).
BASE = """
[chains.devnet]
chain_id = 31337

[[chains.devnet.providers]]
id = "a"
url = "http://127.0.0.1:8545"
"""

# Appended to BASE: a second provider, whose problems are at providers[1].
PROVIDER = '\n[[chains.devnet.providers]]\nid = "b"\n'

# A second chain, for collisions.
ETHEREUM = """
[chains.ethereum]
chain_id = 1
aliases = ["eth"]
providers = [{ id = "p", url = "https://eth.example" }]
"""

ONE_PROVIDER = 'providers = [{ id = "a", url = "http://h" }]'


def chain(name: str = "x", body: str = "chain_id = 5") -> str:
    """A chain table with one valid provider; ``body`` holds its other keys."""
    return f"[chains.{name}]\n{body}\n{ONE_PROVIDER}\n"


STRATEGIES = '"fastest", "latency-weighted", "load-balanced", "priority", "round-robin"'


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, env=env or {})
    return [str(problem) for problem in caught.value.problems]


CASES: list[tuple[str, str, str]] = [
    # (case id, text appended to BASE, the one rendered problem)
    ("unknown top-level table", "[servr]\nport = 1", "servr: unknown field"),
    ("unknown field", "[server]\nprot = 1", "server.prot: unknown field"),
    ("port too low", "[server]\nport = 0", "server.port: must be between 1 and 65535, got 0"),
    (
        "port too high",
        "[server]\nport = 65536",
        "server.port: must be between 1 and 65535, got 65536",
    ),
    ("string for int", '[server]\nport = "4000"', "server.port: expected integer, got string"),
    ("bool for int", "[server]\nport = true", "server.port: expected integer, got boolean"),
    (
        "float for int",
        "[routing]\nmax_attempts = 2.5",
        "routing.max_attempts: expected integer, got float",
    ),
    ("date for string", "[server]\nhost = 1979-05-27", "server.host: expected string, got date"),
    ("table for int", "[server.port]\nx = 1", "server.port: expected integer, got table"),
    ("empty string", '[server]\nhost = ""', "server.host: must not be empty"),
    ("positive int", "[server]\nmax_batch = 0", "server.max_batch: must be at least 1, got 0"),
    (
        "non-negative int",
        "[server]\nshutdown_grace_ms = -1",
        "server.shutdown_grace_ms: must be at least 0, got -1",
    ),
    (
        "int beyond 64 bits",
        "[server]\nmax_body_bytes = 9223372036854775808",
        "server.max_body_bytes: must be at most 9223372036854775807, got 9223372036854775808",
    ),
    (
        "bad strategy",
        '[routing]\ndefault_strategy = "fast"',
        f'routing.default_strategy: must be one of {STRATEGIES}; got "fast"',
    ),
    (
        "strategy wrong type",
        "[routing]\ndefault_strategy = 1",
        f"routing.default_strategy: must be one of {STRATEGIES}; got 1",
    ),
    (
        "negative float",
        "[routing]\nlw_beta = -1.0",
        "routing.lw_beta: must be at least 0.0, got -1.0",
    ),
    (
        "non-finite float",
        "[routing]\nlw_beta = inf",
        "routing.lw_beta: must be a finite number, got inf",
    ),
    (
        "string for float",
        '[routing]\nlw_beta = "3"',
        "routing.lw_beta: expected number, got string",
    ),
    (
        "share above 1",
        "[routing]\nexploration_share = 1.5",
        "routing.exploration_share: must be between 0.0 and 1.0, got 1.5",
    ),
    (
        "method deadline",
        "[routing]\nmethod_deadlines_ms = { eth_call = 0 }",
        "routing.method_deadlines_ms.eth_call: must be at least 1, got 0",
    ),
    (
        "method name",
        '[routing]\nmethod_deadlines_ms = { "eth call" = 5 }',
        'routing.method_deadlines_ms."eth call": invalid name: must be a JSON-RPC method name, '
        'got "eth call"',
    ),
    (
        "hedge off is absent",
        "[routing.hedge]\nafter_ms = 0",
        "routing.hedge.after_ms: must be at least 1, got 0",
    ),
    (
        "breaker threshold",
        "[circuit_breaker]\ntimeout_threshold = 0",
        "circuit_breaker.timeout_threshold: must be at least 1, got 0",
    ),
    (
        "breaker recovery above max",
        "[circuit_breaker]\nrecovery_timeout_ms = 700000",
        "circuit_breaker.recovery_timeout_ms: max_recovery_timeout_ms (600000) must be at least "
        "recovery_timeout_ms (700000)",
    ),
    (
        "chain breaker max below inherited recovery",
        "[chains.devnet.circuit_breaker]\nmax_recovery_timeout_ms = 1000",
        "chains.devnet.circuit_breaker.max_recovery_timeout_ms: max_recovery_timeout_ms (1000) "
        "must be at least recovery_timeout_ms (60000)",
    ),
    (
        "chain breaker unknown key",
        "[chains.devnet.circuit_breaker]\nthreshold = 1",
        "chains.devnet.circuit_breaker.threshold: unknown field",
    ),
    (
        "chain_id zero",
        chain(body="chain_id = 0"),
        "chains.x.chain_id: must be at least 1, got 0",
    ),
    (
        "chain_id missing",
        chain(body=""),
        "chains.x.chain_id: missing required field",
    ),
    ("providers missing", "[chains.x]\nchain_id = 5", "chains.x.providers: missing required field"),
    ("unknown chain field", chain(body="chain_id = 5\nrpc = 1"), "chains.x.rpc: unknown field"),
    (
        "providers empty",
        "[chains.x]\nchain_id = 5\nproviders = []",
        "chains.x.providers: must have at least 1 item",
    ),
    (
        "block time",
        chain(body="chain_id = 5\nblock_time_ms = 0"),
        "chains.x.block_time_ms: must be at least 1, got 0",
    ),
    (
        "chain strategy",
        chain(body='chain_id = 5\ndefault_strategy = "rr"'),
        f'chains.x.default_strategy: must be one of {STRATEGIES}; got "rr"',
    ),
    (
        "chain name format",
        chain("Mainnet"),
        "chains.Mainnet: invalid name: must be lowercase letters, digits, '-' or '_', starting "
        'with a letter or digit, got "Mainnet"',
    ),
    (
        "chain name reserved",
        chain("fastest"),
        'chains.fastest: "fastest" is reserved for routes; pick another chain name',
    ),
    (
        "alias format",
        chain(body='chain_id = 5\naliases = ["ok", "Not OK"]'),
        "chains.x.aliases[1]: must be lowercase letters, digits, '-' or '_', starting with a "
        'letter or digit, got "Not OK"',
    ),
    (
        "alias duplicate",
        chain(body='chain_id = 5\naliases = ["y", "y"]'),
        'chains.x.aliases[1]: duplicate alias "y"',
    ),
    (
        "alias reserved",
        chain(body='chain_id = 5\naliases = ["provider"]'),
        'chains.x.aliases[0]: "provider" is reserved for routes; pick another alias',
    ),
    (
        "alias is another chain's name",
        ETHEREUM.replace('["eth"]', '["devnet"]'),
        'chains.ethereum.aliases[0]: alias "devnet" is already the name of chain "devnet"',
    ),
    (
        "alias is another chain's id",
        ETHEREUM.replace('["eth"]', '["31337"]'),
        'chains.ethereum.aliases[0]: alias "31337" is already the chain id of chain "devnet"',
    ),
    (
        "alias is another chain's alias",
        ETHEREUM + chain(body='chain_id = 5\naliases = ["eth"]'),
        'chains.x.aliases[0]: alias "eth" is already an alias of chain "ethereum"',
    ),
    (
        "duplicate chain id",
        ETHEREUM.replace("chain_id = 1", "chain_id = 31337"),
        'chains.ethereum.chain_id: chain id 31337 is already used by chain "devnet"',
    ),
    (
        "chain id is another chain's name",
        chain("1") + ETHEREUM,
        'chains.ethereum.chain_id: chain id 1 is already the name of chain "1"',
    ),
    ("provider missing url", PROVIDER, "chains.devnet.providers[1].url: missing required field"),
    (
        "provider unknown field",
        PROVIDER + 'urll = "http://h"\nurl = "http://h"',
        "chains.devnet.providers[1].urll: unknown field",
    ),
    (
        "provider id format",
        '\n[[chains.devnet.providers]]\nid = "b c"\nurl = "http://h"',
        "chains.devnet.providers[1].id: must be letters, digits, '.', '-' or '_', starting with "
        'a letter or digit, got "b c"',
    ),
    (
        "duplicate provider id",
        '\n[[chains.devnet.providers]]\nid = "a"\nurl = "http://h"',
        'chains.devnet.providers[1].id: duplicate provider id "a" (first used at providers[0])',
    ),
    (
        "url scheme",
        PROVIDER + 'url = "ftp://files.example/x"',
        "chains.devnet.providers[1].url: must be a URL with scheme http or https and a host, "
        'got "ftp://files.example/x"',
    ),
    (
        "url without host",
        PROVIDER + 'url = "http://"',
        'chains.devnet.providers[1].url: must be a URL with scheme http or https and a host, got "http://"',
    ),
    (
        "url bad port",
        PROVIDER + 'url = "http://h:99999"',
        "chains.devnet.providers[1].url: must be a URL with scheme http or https and a host, "
        'got "http://h:99999"',
    ),
    (
        "url is masked in the message",
        PROVIDER + 'url = "ftp://u:secret@h/v2/AbCdEf0123456789AbCdEf"',
        "chains.devnet.providers[1].url: must be a URL with scheme http or https and a host, "
        'got "ftp://***:***@h/v2/***"',
    ),
    (
        "ws_url scheme",
        PROVIDER + 'url = "http://h"\nws_url = "http://h"',
        'chains.devnet.providers[1].ws_url: must be a URL with scheme ws or wss and a host, got "http://h"',
    ),
    (
        "priority",
        PROVIDER + 'url = "http://h"\npriority = -1',
        "chains.devnet.providers[1].priority: must be at least 0, got -1",
    ),
    (
        "archival as string",
        PROVIDER + 'url = "http://h"\narchival = "yes"',
        "chains.devnet.providers[1].archival: expected boolean, got string",
    ),
    (
        "headers not a table",
        PROVIDER + 'url = "http://h"\nheaders = ["x"]',
        "chains.devnet.providers[1].headers: expected table, got array",
    ),
    (
        "header value type",
        PROVIDER + 'url = "http://h"\nheaders = { X-Id = 5 }',
        "chains.devnet.providers[1].headers.X-Id: expected string, got integer",
    ),
    (
        "header value line break",
        PROVIDER + 'url = "http://h"\nheaders = { X-Id = "a\\r\\nInjected: 1" }',
        "chains.devnet.providers[1].headers.X-Id: must not contain line breaks or NUL",
    ),
    (
        "header name",
        PROVIDER + 'url = "http://h"\nheaders = { "X Id" = "a" }',
        'chains.devnet.providers[1].headers."X Id": invalid name: must be a valid HTTP header '
        'name, got "X Id"',
    ),
    (
        "empty api key",
        PROVIDER + 'url = "http://h"\napi_key = ""',
        "chains.devnet.providers[1].api_key: must not be empty",
    ),
    (
        "api key and authorization header",
        PROVIDER + 'url = "http://h"\napi_key = "k"\nheaders = { authorization = "Bearer k" }',
        "chains.devnet.providers[1].api_key: set either api_key or an Authorization header, "
        "not both",
    ),
    (
        "profile slug",
        chain("x").replace("chains.", "profiles.Team_A.chains."),
        "profiles.Team_A: invalid name: must be lowercase letters, digits, '-' or '_', starting "
        'with a letter or digit, got "Team_A"',
    ),
    (
        "profile slug reserved",
        chain("x").replace("chains.", "profiles.default.chains."),
        'profiles.default: the slug "default" is reserved for the top-level chains',
    ),
    ("profile without chains", "[profiles.team]", "profiles.team.chains: missing required field"),
    (
        "profile unknown field",
        '[profiles.team]\nname = "Team"\n' + chain().replace("chains.", "profiles.team.chains."),
        "profiles.team.name: unknown field",
    ),
    (
        "profile chain problem",
        chain().replace("chains.", "profiles.team.chains.").replace("http://h", "ws://h"),
        "profiles.team.chains.x.providers[0].url: must be a URL with scheme http or https and a "
        'host, got "ws://h"',
    ),
    (
        "collisions are per profile",
        (chain("x") + chain("y")).replace("chains.", "profiles.team.chains."),
        'profiles.team.chains.y.chain_id: chain id 5 is already used by chain "x"',
    ),
]


@pytest.mark.parametrize(
    ("suffix", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_each_problem_has_its_path_and_message(suffix: str, expected: str) -> None:
    assert problems(BASE + "\n" + suffix) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "chains: missing required field"),
        ("chains = {}", "chains: must have at least 1 entry"),
        ("chains = 5", "chains: expected table, got integer"),
        ("chains = [1]", "chains: expected table, got array"),
        (
            "[chains.x]\nchain_id = 1\nproviders = 3",
            "chains.x.providers: expected array, got integer",
        ),
        (
            "[chains.x]\nchain_id = 1\nproviders = [3]",
            "chains.x.providers[0]: expected table, got integer",
        ),
        (
            "[chains.x]\nchain_id = 1\nproviders = [{}]",
            "chains.x.providers[0].id: missing required field",
        ),
        ('chains.x = "ethereum"', "chains.x: expected table, got string"),
        ("profiles = []\n" + BASE, "profiles: expected table, got array"),
    ],
)
def test_document_shape_problems(text: str, expected: str) -> None:
    assert expected in problems(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = [", "invalid TOML at end of document: Invalid value"),
        (
            "x = 1\nb c",
            "invalid TOML at line 2, column 3: Expected '=' after a key in a key/value pair",
        ),
        ("a = 1\na = 2\n", "invalid TOML at line 2, column 6: Cannot overwrite a value"),
        ("a = " + "[" * 2000 + "]" * 2000, "invalid TOML: arrays or tables nested too deeply"),
    ],
)
def test_toml_syntax_error_is_one_problem_with_position(text: str, expected: str) -> None:
    assert problems(text) == [expected]


MANY_PROBLEMS = """
[server]
port = 0
hostt = "x"

[routing]
default_strategy = "fast"

[circuit_breaker]
max_recovery_timeout_ms = 10

[chains.devnet]
chain_id = 31337
aliases = ["local", "1", "local"]

[[chains.devnet.providers]]
id = "devnet-1"
urll = "http://127.0.0.1:8545"

[[chains.devnet.providers]]
id = "devnet-1"
url = "http://127.0.0.1:${PORT}"
ws_url = "${WS_URL}"

[chains.ethereum]
chain_id = 1
providers = [{ id = "p", url = "https://eth.example" }]

[profiles.Team.chains.x]
chain_id = 5
"""


def test_a_file_with_several_problems_reports_all_of_them_in_file_order() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(MANY_PROBLEMS, env={"PORT": "8546"}, source="bad.toml")
    error = caught.value
    expected = [
        "server.port: must be between 1 and 65535, got 0",
        "server.hostt: unknown field",
        f'routing.default_strategy: must be one of {STRATEGIES}; got "fast"',
        "circuit_breaker.max_recovery_timeout_ms: max_recovery_timeout_ms (10) must be at least "
        "recovery_timeout_ms (60000)",
        'chains.devnet.aliases[1]: alias "1" is already the chain id of chain "ethereum"',
        'chains.devnet.aliases[2]: duplicate alias "local"',
        "chains.devnet.providers[0].urll: unknown field",
        "chains.devnet.providers[0].url: missing required field",
        'chains.devnet.providers[1].id: duplicate provider id "devnet-1" (first used at '
        "providers[0])",
        "chains.devnet.providers[1].ws_url: environment variable WS_URL is not set",
        "profiles.Team: invalid name: must be lowercase letters, digits, '-' or '_', starting "
        'with a letter or digit, got "Team"',
        "profiles.Team.chains.x.providers: missing required field",
    ]
    assert [str(problem) for problem in error.problems] == expected
    assert error.render() == "\n".join(expected)
    assert str(error) == f"bad.toml: {len(expected)} configuration problems\n" + error.render()
    assert error.source == "bad.toml"


def test_problem_renders_as_path_colon_message() -> None:
    assert str(ConfigProblem(path="chains.devnet.providers[0].urll", message="unknown field")) == (
        "chains.devnet.providers[0].urll: unknown field"
    )
    assert str(ConfigProblem(path="", message="invalid TOML: x")) == "invalid TOML: x"


def test_config_error_needs_a_problem() -> None:
    with pytest.raises(ValueError):
        ConfigError([])


@pytest.mark.parametrize(
    ("key", "rendered"),
    [
        ("Plain-Key_1", "chains.Plain-Key_1"),
        ("has.dot", 'chains."has.dot"'),
        ('q"uote', 'chains."q\\"uote"'),
        ("", 'chains.""'),
    ],
)
def test_paths_quote_keys_that_are_not_bare(key: str, rendered: str) -> None:
    text = f"[chains.{render_key(key)}]\nchain_id = 5\n{ONE_PROVIDER}"
    assert problems(text)[0].startswith(rendered + ": ")


def render_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else json.dumps(key)
