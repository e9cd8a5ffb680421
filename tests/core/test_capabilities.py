"""The per-provider capability book: configured and learned, with TTLs."""

from __future__ import annotations

from lasso.config import ProviderConfig
from lasso.core.capabilities import CapabilityBook


def _book(**kw: object) -> CapabilityBook:
    return CapabilityBook(ProviderConfig(id="p", url="http://x", **kw))  # type: ignore[arg-type]


def test_configured_unsupported_methods_match_names_and_prefixes() -> None:
    book = _book(unsupported_methods=("trace_*", "eth_getProof"))
    assert not book.supports("trace_block", 0.0)
    assert not book.supports("eth_getProof", 0.0)
    assert book.supports("eth_call", 0.0)


def test_a_learned_unsupported_method_is_skipped_until_its_ttl_passes() -> None:
    book = _book()
    book.learn_unsupported("eth_getBlockReceipts", 10.0, ttl_s=60.0)
    assert not book.supports("eth_getBlockReceipts", 69.9)
    assert book.statistics(20.0).learned_unsupported == {"eth_getBlockReceipts": 50.0}
    assert book.supports("eth_getBlockReceipts", 70.0)
    assert book.statistics(70.0).learned_unsupported == {}


def test_pruning_is_learned_as_a_depth_and_the_shallowest_wins() -> None:
    book = _book()
    assert book.serves_depth(10_000, 0.0)
    book.learn_pruned(500, 0.0, ttl_s=100.0)
    book.learn_pruned(900, 1.0, ttl_s=100.0)
    assert book.serves_depth(499, 2.0)
    assert not book.serves_depth(500, 2.0)
    assert book.statistics(2.0).pruned_depth == 500
    assert book.serves_depth(10_000, 101.0)  # expired: tried again


def test_a_non_archival_provider_serves_no_archival_depth() -> None:
    assert not _book(archival=False).serves_depth(200, 0.0)


def test_the_logs_range_limit_is_the_smaller_of_configured_and_learned() -> None:
    book = _book(max_logs_block_range=2_000)
    assert book.logs_range_limit() == 2_000
    book.learn_logs_range_limit(500)
    book.learn_logs_range_limit(1_000)  # a looser lesson never widens it
    assert book.logs_range_limit() == 500
    assert _book().logs_range_limit() is None


def test_retune_keeps_what_was_learned() -> None:
    book = _book()
    book.learn_logs_range_limit(100)
    book.retune(ProviderConfig(id="p", url="http://x", unsupported_methods=("debug_*",)))
    assert book.logs_range_limit() == 100
    assert not book.supports("debug_traceCall", 0.0)
