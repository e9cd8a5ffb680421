"""The probe's table and TOML snippet; the snippet loads with Lasso's own config loader
once merged into the providers' entries."""

from __future__ import annotations

import tomllib
from typing import Any

from lasso.config import settings_from_dict
from lasso.core.probe_methods import Verdict
from lasso.probe.report import (
    ArchivalOutcome,
    LogsOutcome,
    MethodOutcome,
    ProviderReport,
    render_table,
    render_toml,
)

SETTINGS = """
[chains.devnet]
chain_id = 31337
[[chains.devnet.providers]]
id = "archive"
url = "http://127.0.0.1:1"
ws_url = "ws://127.0.0.1:1"
priority = 1
[[chains.devnet.providers]]
id = "pruned"
url = "http://127.0.0.1:2"
[[chains.devnet.providers]]
id = "dead"
url = "http://127.0.0.1:3"

[profiles.test.chains.devnet]
chain_id = 31337
[[profiles.test.chains.devnet.providers]]
id = "archive"
url = "http://127.0.0.1:1"
"""

METHODS = (
    MethodOutcome("eth_chainId", Verdict.SUPPORTED),
    MethodOutcome("trace_call", Verdict.UNSUPPORTED, "-32601 Method not found"),
    MethodOutcome("txpool_content", Verdict.UNKNOWN, "UpstreamTimeout: no answer"),
)

ARCHIVE = ProviderReport(
    id="archive",
    url="http://127.0.0.1:1",
    answered=True,
    head=80,
    methods=METHODS,
    archival=ArchivalOutcome(head=80, full=True, earliest=1, probes=2),
    logs=LogsOutcome(bound=81, limit=50, named=True, probes=2),
    batch=True,
    subscriptions=True,
    elapsed_s=0.1,
)
PRUNED = ProviderReport(
    id="pruned",
    url="http://127.0.0.1:2",
    answered=True,
    head=80,
    methods=METHODS[:2],
    archival=ArchivalOutcome(head=80, full=False, earliest=64, probes=8),
    logs=LogsOutcome(bound=81, unlimited=True, probes=1),
    batch=False,
    batch_detail="HTTP 400",
    subscriptions=None,
    subscriptions_detail="no ws_url",
    elapsed_s=0.2,
)
DEAD = ProviderReport(
    id="dead", url="http://127.0.0.1:3", answered=False, error="connect failed", elapsed_s=0.0
)
REPORTS = [ARCHIVE, PRUNED, DEAD]


def merged(tree: dict[str, Any], snippet: str, chain: dict[str, Any]) -> dict[str, Any]:
    """``tree`` with each snippet table merged into the provider of the same id."""
    tables = tomllib.loads(snippet)
    for prefix in ("profiles", "test"):
        tables = tables.get(prefix, tables)
    for table in tables["chains"]["devnet"]["providers"]:
        entry = next(p for p in chain["providers"] if p["id"] == table["id"])
        entry.update(table)
    return tree


def test_the_snippet_loads_once_merged_into_the_providers() -> None:
    snippet = render_toml("devnet", "default", REPORTS, "2026-12-05T02:00:00Z")
    tree = tomllib.loads(SETTINGS)
    settings = settings_from_dict(
        merged(tree, snippet, tree["chains"]["devnet"]), env={}, source="merged"
    )
    chain = settings.default_profile.chains["devnet"]
    archive, pruned, dead = chain.providers
    assert (archive.archival, archive.max_logs_block_range) == (True, 50)
    assert (archive.unsupported_methods, archive.supports_batch) == (("trace_call",), True)
    assert (archive.subscriptions, archive.priority, archive.ws_url) == (
        True,
        1,
        "ws://127.0.0.1:1",
    )
    assert (pruned.archival, pruned.max_logs_block_range, pruned.supports_batch) == (
        False,
        None,
        False,
    )
    assert pruned.subscriptions is True  # not measured (no ws_url): the default stands
    assert dead.unsupported_methods == ()


def test_the_snippet_says_what_each_value_rests_on() -> None:
    snippet = render_toml("devnet", "default", REPORTS, "2026-12-05T02:00:00Z")
    assert "# earliest state block 64 (head 80: keeps 16 blocks of state)" in snippet
    assert "# eth_getLogs: 50 blocks (stated by the node's refusal)" in snippet
    assert "# 3 methods probed: 1 supported, 1 unsupported, 1 unknown (not listed)" in snippet
    assert "# subscriptions not measured: no ws_url" in snippet
    assert "# dead: no answer (connect failed); nothing measured" in snippet
    assert snippet.count("[[chains.devnet.providers]]") == 2


def test_a_profile_snippet_names_the_profile_table() -> None:
    snippet = render_toml("devnet", "test", [ARCHIVE], "now")
    assert "[[profiles.test.chains.devnet.providers]]" in snippet
    tree = tomllib.loads(SETTINGS)
    chain = tree["profiles"]["test"]["chains"]["devnet"]
    settings = settings_from_dict(merged(tree, snippet, chain), env={})
    (archive,) = settings.profiles["test"].chains["devnet"].providers
    assert archive.max_logs_block_range == 50


def test_the_table_is_aligned_and_lists_what_went_wrong() -> None:
    table = render_table("devnet", "default", REPORTS, 0.25)
    lines = table.splitlines()
    assert lines[0] == "lasso probe devnet: 3 providers in 0.25 s"
    header, archive, pruned, dead = lines[2:6]
    assert header.split() == [
        "provider", "head", "archival", "logs", "range", "batch", "subscribe", "methods", "time"
    ]  # fmt: skip
    column = header.index("archival")
    assert archive[column:].startswith("full ")
    assert pruned[column:].startswith("from 64 (keeps 16)")
    assert archive[header.index("logs range") :].startswith("50 (stated)")
    assert pruned[header.index("logs range") :].startswith("none <= 81")
    assert pruned[header.index("subscribe") :].startswith("no ws")
    assert dead.split()[:3] == ["dead", "-", "no"]
    matrix = lines[lines.index("", 2) + 1 :]
    assert matrix[0].split() == ["method", "archive", "pruned"]
    assert matrix[2].split() == ["trace_call", "no", "no"]
    assert matrix[3].split() == ["txpool_content", "?", "-"]
    assert "  unsupported: trace_call" in lines
    assert "  txpool_content: unknown (UpstreamTimeout: no answer)" in lines
    assert "  batch: HTTP 400" in lines
    assert "  no answer: connect failed" in lines


def test_what_a_provider_says_cannot_inject_toml_or_terminal_codes() -> None:
    hostile = "anvil\nsupports_batch = false\r\n[evil]\x1b[2J"
    report = ProviderReport(
        id="archive",
        url="http://127.0.0.1:1",
        answered=True,
        client=hostile,
        head=80,
        methods=METHODS,
        archival=ArchivalOutcome(head=80, detail=hostile),
        batch=None,
        batch_detail=hostile,
        subscriptions=True,
    )
    dead = ProviderReport(id="dead", url="http://127.0.0.1:3", answered=False, error=hostile)
    snippet = render_toml("devnet", "default", [report, dead], "now")
    (table,) = tomllib.loads(snippet)["chains"]["devnet"]["providers"]
    assert "evil" not in tomllib.loads(snippet)
    assert "supports_batch" not in table
    assert "# client: anvil supports_batch = false  [evil] [2J" in snippet
    rendered = render_table("devnet", "default", [report, dead], 0.1)
    assert "\x1b" not in rendered and "\r" not in rendered
