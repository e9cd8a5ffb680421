"""Eligibility: which providers a request may go to, stage by stage, failing open."""

from __future__ import annotations

from dataclasses import dataclass, field

from lasso.config.schema import MethodRules
from lasso.core.block_target import BlockTarget, TargetKind, block_target
from lasso.core.capabilities import CapabilityBook
from lasso.core.chainstate import ChainState
from lasso.core.eligibility import (
    ChainFacts,
    Eligibility,
    archival_depth,
    block_first,
    select,
    wanted_block,
)
from lasso.core.method_rules import compile_rules
from lasso.core.router import ChannelView, Tier

HEAD_LAG = BlockTarget(TargetKind.TAG, tag="latest")
NO_BLOCK = BlockTarget(TargetKind.NONE)


@dataclass
class Caps:
    archival: bool = True
    unsupported_methods: tuple[str, ...] = ()
    max_logs_block_range: int | None = None
    supports_batch: bool = True
    subscriptions: bool = True


@dataclass
class P:
    capabilities: CapabilityBook = field(default_factory=lambda: CapabilityBook(Caps()))


@dataclass
class Config:
    max_lag_blocks: int = 3
    archival_threshold: int = 128
    methods: MethodRules = field(default_factory=MethodRules)


def view(pid: str, transport: str = "http", tier: Tier = Tier.HEALTHY) -> ChannelView:
    return ChannelView(pid, transport, 0, int(pid[1:]), tier)


def ids(views: object) -> list[str]:
    return [f"{v.provider_id}:{v.transport}" for v in views]  # type: ignore[attr-defined]


VIEWS = [view("p0"), view("p0", "ws"), view("p1"), view("p2")]


def run(
    target: BlockTarget,
    *,
    facts: ChainFacts | None = None,
    providers: dict[str, P] | None = None,
    preferred: frozenset[str] | None = None,
    method: str = "eth_call",
    views: list[ChannelView] = VIEWS,
    now: float = 0.0,
) -> list[str]:
    return ids(
        select(
            views,
            method=method,
            target=target,
            now=now,
            facts=facts or ChainFacts(None, frozenset(), {}, 0.0),
            providers=providers or {p: P() for p in ("p0", "p1", "p2")},
            preferred=preferred,
            archival_threshold=128,
        )
    )


def test_head_sensitive_requests_leave_out_excluded_providers() -> None:
    facts = ChainFacts(1000, frozenset({"p0"}), {"p0": 990, "p1": 1000, "p2": 1000}, 0.0)
    assert run(HEAD_LAG, facts=facts) == ["p1:http", "p2:http"]
    # a request by hash, or naming an old block, does not care about the head
    by_hash = block_target("eth_getBlockByHash", b'["0x' + b"ab" * 32 + b'"]')
    assert run(by_hash, facts=facts) == ids(VIEWS)
    assert run(BlockTarget(TargetKind.NUMBER, number=995), facts=facts) == ids(VIEWS)


def test_without_a_consensus_head_nobody_is_left_out() -> None:
    state = ChainState(1000)
    facts = Eligibility().facts(state, ["p0", "p1", "p2"], 0.0, 3)
    assert facts.head is None and facts.excluded == frozenset()
    assert run(HEAD_LAG, facts=facts) == ids(VIEWS)


def test_filtering_fails_open() -> None:
    everyone_lags = ChainFacts(1000, frozenset({"p0", "p1", "p2"}), {}, 0.0)
    assert run(HEAD_LAG, facts=everyone_lags) == ids(VIEWS)
    # the only provider left is OPEN: not usable, so the stage is skipped
    views = [view("p0"), view("p1", tier=Tier.OPEN)]
    assert run(HEAD_LAG, facts=ChainFacts(1000, frozenset({"p0"}), {}, 0.0), views=views) == [
        "p0:http",
        "p1:http",
    ]


def test_capabilities_configured_and_learned() -> None:
    providers = {
        "p0": P(CapabilityBook(Caps(unsupported_methods=("trace_*",)))),
        "p1": P(),
        "p2": P(),
    }
    providers["p1"].capabilities.learn_unsupported("trace_block", 0.0, 60.0)
    assert run(NO_BLOCK, method="trace_block", providers=providers) == ["p2:http"]
    assert run(NO_BLOCK, method="trace_block", providers=providers, now=60.0) == [
        "p1:http",
        "p2:http",
    ]
    for pid in ("p1", "p2"):
        providers[pid].capabilities.learn_unsupported("trace_block", 60.0, 60.0)
    assert run(NO_BLOCK, method="trace_block", providers=providers, now=60.0) == ids(VIEWS)


def test_method_rule_preferences_restrict_then_fail_open() -> None:
    assert run(NO_BLOCK, preferred=frozenset({"p2"})) == ["p2:http"]
    assert run(NO_BLOCK, preferred=frozenset({"gone"})) == ids(VIEWS)
    providers = {"p0": P(), "p1": P(), "p2": P(CapabilityBook(Caps(unsupported_methods=("*",))))}
    # the preferred provider cannot serve it: the preference is kept (fail open per stage)
    assert run(NO_BLOCK, preferred=frozenset({"p2"}), providers=providers) == ["p2:http"]


def test_archival_targets_go_to_providers_serving_that_depth() -> None:
    providers = {"p0": P(CapabilityBook(Caps(archival=False))), "p1": P(), "p2": P()}
    providers["p1"].capabilities.learn_pruned(500, 0.0, 60.0)
    facts = ChainFacts(1000, frozenset(), {}, 0.0)
    old = BlockTarget(TargetKind.NUMBER, number=100)  # depth 900
    assert run(old, facts=facts, providers=providers) == ["p2:http"]
    mid = BlockTarget(TargetKind.NUMBER, number=700)  # depth 300 < 500: p1 serves it
    assert run(mid, facts=facts, providers=providers) == ["p1:http", "p2:http"]
    recent = BlockTarget(TargetKind.NUMBER, number=900)  # not archival
    assert run(recent, facts=facts, providers=providers) == ids(VIEWS)
    earliest = BlockTarget(TargetKind.TAG, tag="earliest")
    no_head = ChainFacts(None, frozenset(), {}, 0.0)
    assert run(earliest, facts=no_head, providers=providers) == ["p2:http"]


def test_archival_depth() -> None:
    rng = BlockTarget(TargetKind.RANGE, low=10, high="latest")
    assert archival_depth(rng, 1000, 128) == 990
    assert archival_depth(BlockTarget(TargetKind.NUMBER, number=900), 1000, 128) is None
    assert archival_depth(BlockTarget(TargetKind.NUMBER, number=5), None, 128) is None
    assert archival_depth(BlockTarget(TargetKind.TAG, tag="earliest"), 7, 128) == 7


def test_providers_known_to_have_the_block_go_first_in_strategy_order() -> None:
    channels = (view("p2"), view("p0"), view("p0", "ws"), view("p1"))
    heights = {"p0": 10, "p1": 12, "p2": 9}
    assert ids(block_first(channels, 10, heights)) == ["p0:http", "p0:ws", "p1:http", "p2:http"]
    assert block_first(channels, 5, heights) is channels  # everyone has it
    assert block_first(channels, 50, heights) is channels  # nobody is known to
    assert block_first(channels, 10, {}) is channels
    assert wanted_block(BlockTarget(TargetKind.NUMBER, number=7)) == 7
    assert wanted_block(BlockTarget(TargetKind.RANGE, low=1, high=9)) == 9
    assert wanted_block(BlockTarget(TargetKind.RANGE, low=1, high="latest")) is None
    assert wanted_block(HEAD_LAG) is None


def test_facts_are_cached_until_the_state_changes_or_age() -> None:
    state = ChainState(1000)
    for pid in ("p0", "p1", "p2"):
        state.observe(pid, 100, f"0x{100:064x}", None, 0.0)
    gate = Eligibility(max_age_s=1.0)
    first = gate.facts(state, ["p0", "p1", "p2"], 0.0, 3)
    assert first.head == 100 and first.excluded == frozenset()
    assert gate.facts(state, ["p0", "p1", "p2"], 0.5, 3) is first
    state.observe("p1", 110, f"0x{110:064x}", None, 0.5)
    state.observe("p2", 110, f"0x{110:064x}", None, 0.5)
    moved = gate.facts(state, ["p0", "p1", "p2"], 0.5, 3)
    assert moved.excluded == frozenset({"p0"}) and moved.heights["p1"] == 110
    assert gate.facts(state, ["p0", "p1", "p2"], 0.5, 20).excluded == frozenset()
    # p0 last reported at 0: past the 30 s window it is not live (re-read after max_age_s)
    assert gate.facts(state, ["p0", "p1", "p2"], 30.4, 20).excluded == frozenset({"p0"})


def test_method_rules() -> None:
    rules = compile_rules(MethodRules(deny=("debug_*",), providers={"trace_*": ("erigon",)}))
    assert rules.refuses("debug_traceCall") and not rules.refuses("eth_call")
    assert rules.providers_for("trace_block") == frozenset({"erigon"})
    assert rules.providers_for("eth_call") is None
    allow = compile_rules(MethodRules(allow=("eth_*",), deny=("eth_sign",)))
    assert not allow.refuses("eth_call") and allow.refuses("net_version")
    assert allow.refuses("eth_sign")
    both = compile_rules(MethodRules(providers={"trace_*": ("a",), "trace_block": ("b",)}))
    assert both.providers_for("trace_block") == frozenset({"a", "b"})
    assert compile_rules(both.source, both) is both
