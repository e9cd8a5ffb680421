"""Label values for ``/metrics``: every one drawn from a bounded set.

A Prometheus series is kept for every distinct label set, forever, so a label
value a client chooses is a memory leak it controls (10,000 made-up method
names would be 10,000 series). The rules here are pure:

- a **method** keeps its name only if Lasso knows it (:mod:`lasso.core.methods`'
  tables, the common extras below, ``[metrics] extra_methods``); any other folds
  into ``other``;
- a JSON-RPC **code** keeps its number only if it is a standard or widely used one;
  any other folds into ``other``; no code is ``none``;
- an event's short **word** (an inbound limit's kind, a reload's result) keeps
  itself while fewer than :data:`MAX_WORDS` distinct ones were seen and it looks
  like a word; else ``other``.

Chains and providers are configured names (slugs and provider ids); an event that
names anything else is counted under ``other`` (:mod:`lasso.metrics.events`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lasso.core.methods import BLOCKED, DEADLINES_MS, DENIED_METHODS, REPLAYABLE, WS_ONLY

__all__ = [
    "KNOWN_CODES",
    "KNOWN_METHODS",
    "NONE",
    "OTHER",
    "WordLabels",
    "code_labels",
    "method_labels",
]

#: The label value for "not applicable" (no provider served, no error code).
NONE = "none"
#: The one label value every unknown method (code, word) folds into.
OTHER = "other"

#: Methods common on Ethereum nodes beyond the ones :mod:`lasso.core.methods` times.
_COMMON = frozenset(
    {
        "eth_getAccount",
        "eth_getRawTransactionByHash",
        "eth_callMany",
        "eth_signTypedData_v4",
        "eth_newHeads",
        "txpool_content",
        "txpool_inspect",
        "txpool_status",
        "net_listening",
        "rpc_modules",
        "debug_getRawBlock",
        "debug_getRawReceipts",
        "debug_getRawTransaction",
        "debug_getRawHeader",
        "trace_filter",
        "trace_get",
        "trace_rawTransaction",
    }
)

KNOWN_METHODS: frozenset[str] = (
    frozenset(DEADLINES_MS) | REPLAYABLE | BLOCKED | WS_ONLY | DENIED_METHODS | _COMMON
)

#: JSON-RPC 2.0's own codes, EIP-1474's, EIP-1193's provider codes, and geth's 3
#: (execution reverted).
KNOWN_CODES: frozenset[int] = frozenset(
    {-32700, -32600, -32601, -32602, -32603}
    | set(range(-32006, -31999))
    | {-32015, -32016, 3, 4001, 4100, 4200, 4900, 4901}
)


def method_labels(extra: Iterable[str] = ()) -> dict[str, str]:
    """The known methods, each its own label; look a method up with ``.get(m, OTHER)``."""
    names = KNOWN_METHODS | frozenset(extra)
    return {name: name for name in names}


def code_labels() -> dict[int | None, str]:
    """JSON-RPC codes to label values; look a code up with ``.get(code, OTHER)``."""
    labels: dict[int | None, str] = {code: str(code) for code in KNOWN_CODES}
    labels[None] = NONE
    return labels


#: Most distinct words a :class:`WordLabels` keeps before it folds new ones into ``other``.
MAX_WORDS = 32
_WORD = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


class WordLabels:
    """Short words from events (a limit's kind, a reload's result), bounded in number."""

    def __init__(self, known: Iterable[str] = (), max_words: int = MAX_WORDS) -> None:
        self._seen = set(known)
        self._max = max_words

    def __call__(self, word: str) -> str:
        if word in self._seen:
            return word
        if len(self._seen) >= self._max or not _WORD.match(word):
            return OTHER
        self._seen.add(word)
        return word
