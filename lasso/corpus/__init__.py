"""A differential transparency corpus: the same requests to a node and to Lasso.

``seed`` builds a chain on a lockstep devnet (transfers, a log-emitting and a
reverting contract from ``contracts``); ``build`` makes a few hundred requests
from it in the families of the ``ethereum/execution-apis`` test corpus, valid
and invalid (``blocks`` and ``execution`` hold the families, ``requests`` the
request type and its ids); ``compare`` decides whether a client could tell
Lasso's answer from the node's and prints the differences as a table.
Used by ``tests/integration/test_corpus_devnet.py``.

It ships in the package beside :mod:`lasso.chaos`, not in ``tests/support``: like
the battle harness (``make battle``), it runs against real nodes (the devnet) rather
than in-process fakes, so the harness can use it, and it needs only
:mod:`lasso.devnet`, msgspec and the standard library, never a test tool.
"""

from lasso.corpus.build import build_corpus
from lasso.corpus.compare import (
    Answer,
    Difference,
    batch_body,
    batch_differences,
    causes,
    difference,
    shape,
    table,
)
from lasso.corpus.requests import CorpusRequest, request_id
from lasso.corpus.seed import ChainFacts, Tx, seed_chain

__all__ = [
    "Answer",
    "ChainFacts",
    "CorpusRequest",
    "Difference",
    "Tx",
    "batch_body",
    "batch_differences",
    "build_corpus",
    "causes",
    "difference",
    "request_id",
    "seed_chain",
    "shape",
    "table",
]
