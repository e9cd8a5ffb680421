"""The finality-aware response cache (issue 12): see ``docs/cache.md``.

* :mod:`lasso.core.cache_policy` — what may be kept and for how long (pure);
* :mod:`lasso.core.reorg_ledger` — new blocks and reorgs from head reports (pure);
* :mod:`lasso.cache.store` — the byte-bounded LRU and its counters (sync, no I/O);
* :mod:`lasso.cache.service` — lookup, coalesced misses, the shared tier (Trio).
"""

from lasso.cache.service import ResponseCache
from lasso.cache.store import CacheStatistics

__all__ = ["CacheStatistics", "ResponseCache"]
