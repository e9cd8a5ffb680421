"""The request corpus: one JSON-RPC request per case, built from a seeded chain.

The cases follow the families of the ``ethereum/execution-apis`` test corpus
(``tests/<method>/*.io``): every block by number and by hash, the genesis, the
block tags, EIP-1898 block objects, unknown hashes, numbers without ``0x``,
bad hex, missing and extra parameters, reverting calls, log filters with bad
ranges, fee history percentiles, proofs, simulations, traces and raw
transactions the node must refuse. They are written here against our own
devnet's data (:class:`~lasso.corpus.seed.ChainFacts`), not copied.

Nothing in the corpus changes chain state, so it can be replayed against a
node and against Lasso in any order and every answer must be the same.
Methods Lasso refuses on purpose (signing, ``eth_accounts``, node-admin
``anvil_*``/``evm_*``, subscriptions over HTTP) are outside the corpus.
"""

from __future__ import annotations

import json

from lasso.corpus import blocks, execution
from lasso.corpus.requests import Corpus, CorpusRequest
from lasso.corpus.seed import ChainFacts


def build_corpus(facts: ChainFacts) -> list[CorpusRequest]:
    """Every request of the corpus, in a fixed order with distinct ids."""
    corpus = Corpus()
    for family in blocks.FAMILIES + execution.FAMILIES:
        family(corpus, facts)
    ids = [json.dumps(r.request_id) for r in corpus.requests]
    assert len(set(ids)) == len(ids), "request ids must be distinct"
    return corpus.requests
