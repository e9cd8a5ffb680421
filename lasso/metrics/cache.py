"""The response cache's families (``lasso.cache``), read from its ``statistics()`` at scrape.

Counters per chain and method: hits, misses (coalesced ones among them), answers read
from the shared store, entries stored, evictions (size bound, expiry, new block, reorg);
gauges: entries and bytes held per chain and method, and the process's byte bound.
Methods are folded as everywhere in ``/metrics`` (``lasso.metrics.labels``): the policy
only ever counts methods it knows or the operator named, so the set is bounded anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lasso.cache import CacheStatistics
from lasso.metrics.labels import OTHER

__all__ = ["cache_families"]

_COUNTERS = (
    ("hits", "lasso_cache_hits", "Calls answered from the response cache."),
    ("misses", "lasso_cache_misses", "Cacheable calls the response cache did not hold."),
    (
        "coalesced",
        "lasso_cache_coalesced",
        "Misses that joined an identical call already in flight (no upstream call of their own).",
    ),
    ("shared_hits", "lasso_cache_shared_hits", "Misses answered from the shared store."),
    ("stored", "lasso_cache_stored", "Answers stored in the response cache."),
    (
        "evictions",
        "lasso_cache_evictions",
        "Entries evicted: size bound, expiry, a new block (latest answers) or a reorg.",
    ),
)
_GAUGES = (
    ("entries", "lasso_cache_entries", "Entries held in the response cache."),
    ("bytes", "lasso_cache_bytes", "Bytes held in the response cache (keys, values, overhead)."),
)


def cache_families(stats: CacheStatistics, methods: Mapping[str, str]) -> Iterator[Metric]:
    folded: defaultdict[tuple[str, str], defaultdict[str, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for row in stats.methods:
        counts = folded[row.chain, methods.get(row.method, OTHER)]
        for field, _, _ in (*_COUNTERS, *_GAUGES):
            counts[field] += getattr(row, field)
    for field, name, doc in _COUNTERS:
        family = CounterMetricFamily(name, doc, labels=["chain", "method"])
        for (chain, method), counts in sorted(folded.items()):
            family.add_metric([chain, method], counts[field])
        yield family
    for field, name, doc in _GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["chain", "method"])
        for (chain, method), counts in sorted(folded.items()):
            gauge.add_metric([chain, method], counts[field])
        yield gauge
    yield GaugeMetricFamily(
        "lasso_cache_max_bytes",
        "The response cache's byte bound ([cache] max_bytes).",
        value=stats.max_bytes,
    )
