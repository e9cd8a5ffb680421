"""The request corpus: one JSON-RPC request per case, built from a seeded chain.

The cases follow the families of the ``ethereum/execution-apis`` test corpus
(``tests/<method>/*.io``): every block by number and by hash, the genesis, the
block tags, EIP-1898 block objects, unknown hashes, numbers without ``0x``,
bad hex, missing and extra parameters, reverting calls, log filters with bad
ranges, fee history percentiles, proofs, simulations, traces and raw
transactions the node must refuse. They are written here against our own
devnet's data (:class:`~lasso.testing.corpus.seed.ChainFacts`), not copied.

Nothing in the corpus changes chain state, so it can be replayed against a
node and against Lasso in any order and every answer must be the same.
Methods Lasso refuses on purpose (signing, ``eth_accounts``, node-admin
``anvil_*``/``evm_*``, subscriptions over HTTP) are outside the corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lasso.devnet import DEV_ACCOUNTS
from lasso.testing.corpus.contracts import EMITTER_INIT, EMITTER_TOPIC, REVERTER_RUNTIME
from lasso.testing.corpus.seed import ChainFacts

UNKNOWN_HASH = "0x" + "de" * 32
OTHER_TOPIC = "0x" + "11" * 32
NOBODY = "0x" + "00" * 19 + "42"  # an address that never held anything
_NO_PARAMS = object()


@dataclass(frozen=True)
class CorpusRequest:
    """One request of the corpus.

    ``volatile`` is None when the node's answer bytes are the only right
    answer; otherwise it says why the answer may legitimately change between
    two asks, and the answers are compared on shape only.
    """

    name: str
    method: str
    body: bytes
    request_id: object
    volatile: str | None = None


def request_id(index: int) -> object:
    """A distinct id of a varied kind for the ``index``-th request.

    Small and large numbers (past 2**53, where a float parser loses digits,
    up to the int64 limits anvil accepts), zero, negatives, and strings that
    look like numbers or need escaping.
    """
    if index == 0:
        return 0
    kind = index % 7
    if kind == 0:
        return index
    if kind == 1:
        return f"corpus-{index}"
    if kind == 2:
        return 2**53 + index
    if kind == 3:
        return -index if index % 2 else -(2**63) + index
    if kind == 4:
        return str(index)
    if kind == 5:
        return 2**63 - 1 - index
    if index == 6:
        return ""
    specials = (f"ünïcødé-{index}", f'quote"{index}', f"back\\slash{index}", f"0x{index:x}")
    return specials[(index // 7) % len(specials)]


class _Corpus:
    def __init__(self) -> None:
        self.requests: list[CorpusRequest] = []

    def add(
        self,
        name: str,
        method: str,
        params: object = _NO_PARAMS,
        *,
        volatile: str | None = None,
    ) -> None:
        rid = request_id(len(self.requests))
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not _NO_PARAMS:
            envelope["params"] = params
        body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
        self.requests.append(CorpusRequest(f"{method}/{name}", method, body, rid, volatile))

    def add_spelled(self, name: str, method: str, rid: str, body: str) -> None:
        """A request written out by hand, for ids spelled the way some encoders spell them."""
        self.requests.append(CorpusRequest(f"{method}/{name}", method, body.encode(), rid))


def build_corpus(facts: ChainFacts) -> list[CorpusRequest]:
    """Every request of the corpus, in a fixed order with distinct ids."""
    corpus = _Corpus()
    for family in _FAMILIES:
        family(corpus, facts)
    ids = [json.dumps(r.request_id) for r in corpus.requests]
    assert len(set(ids)) == len(ids), "request ids must be distinct"
    return corpus.requests


# --- the families ------------------------------------------------------------


def _node_info(c: _Corpus, f: ChainFacts) -> None:
    for method in (
        "eth_blockNumber",
        "eth_chainId",
        "net_version",
        "web3_clientVersion",
        "eth_syncing",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee",
        "eth_protocolVersion",
        "net_listening",
        "eth_hashrate",
        "eth_coinbase",
        "txpool_status",
        "eth_config",
    ):
        c.add("simple", method, [])
    c.add("no-params-member", "eth_blockNumber")
    c.add("no-params-member", "eth_chainId")
    c.add("params-null", "eth_blockNumber", None)
    c.add("params-null", "eth_chainId", None)
    c.add("params-object", "eth_chainId", {})
    c.add("extra-param", "eth_chainId", ["0x1"])
    c.add("extra-param", "eth_blockNumber", ["latest"])
    c.add("sha3", "web3_sha3", ["0x68656c6c6f"])
    c.add("sha3-empty", "web3_sha3", ["0x"])
    c.add("sha3-no-prefix", "web3_sha3", ["68656c6c6f"])
    c.add("sha3-bad-hex", "web3_sha3", ["0xzz"])
    c.add("sha3-missing", "web3_sha3", [])


def _unknown_methods(c: _Corpus, f: ChainFacts) -> None:
    for method in (
        "eth_doesNotExist",
        "foo_bar",
        "ETH_BLOCKNUMBER",
        "eth_mining",
        "net_peerCount",
        "eth_getHeaderByNumber",
        "debug_getRawHeader",
        "debug_getRawBlock",
        "debug_getRawReceipts",
        "debug_getBadBlocks",
    ):
        c.add("unknown", method, ["0x1"] if method.startswith(("debug_getRaw", "eth_getH")) else [])


def _id_spellings(c: _Corpus, f: ChainFacts) -> None:
    """Ids as common encoders write them; the node answers with its own spelling.

    Python's ``json.dumps`` escapes non-ASCII (``"\\u00e9"``) and puts spaces
    after separators; PHP's ``json_encode`` escapes ``/`` as ``\\/``. A node
    decodes the id and writes it back canonically, so a gateway that echoes
    the id bytes as they came is visible to the client.
    """
    n = len(c.requests)
    c.add_spelled(
        "python-default-encoder",
        "eth_blockNumber",
        f"\u00e9t\u00e9-{n}",
        f'{{"jsonrpc": "2.0", "id": "\\u00e9t\\u00e9-{n}",'
        ' "method": "eth_blockNumber", "params": []}',
    )
    c.add_spelled(
        "escaped-solidus",
        "eth_chainId",
        f"a/b-{n + 1}",
        f'{{"jsonrpc":"2.0","id":"a\\/b-{n + 1}","method":"eth_chainId","params":[]}}',
    )
    c.add_spelled(
        "members-reordered-with-spaces",
        "eth_getBlockByNumber",
        f"id {n + 2}",
        f'{{ "params" : [ "0x1" , false ] , "method" : "eth_getBlockByNumber" ,'
        f' "id" : "id {n + 2}" , "jsonrpc" : "2.0" }}',
    )


def _blocks_by_number(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_getBlockByNumber"
    for n in range(f.head + 1):
        c.add(f"get-block-{n}", m, [hex(n), False])
        c.add(f"get-block-{n}-full", m, [hex(n), True])
    for tag in ("latest", "earliest", "safe", "finalized"):
        c.add(f"get-{tag}", m, [tag, False])
    c.add("get-latest-full", m, ["latest", True])
    c.add("get-pending", m, ["pending", False], volatile="the pending block is built at ask time")
    c.add("get-notfound", m, [hex(f.head + 1000), False])
    c.add("get-next", m, [hex(f.head + 1), True])
    c.add("no-prefix", m, ["2", False])
    c.add("json-number", m, [2, False])
    c.add("leading-zero", m, ["0x02", False])
    c.add("empty-hex", m, ["0x", False])
    c.add("huge-number", m, ["0x" + "f" * 20, False])
    c.add("negative", m, ["-0x1", False])
    c.add("bad-hex", m, ["0xg", False])
    c.add("unknown-tag", m, ["newest", False])
    c.add("missing-bool", m, [hex(1)])
    c.add("bool-as-string", m, [hex(1), "true"])
    c.add("extra-param", m, [hex(1), False, "x"])
    c.add("empty-params", m, [])
    c.add("no-params-member", m)
    c.add("params-null", m, None)
    c.add("params-object", m, {"block": "0x1", "full": False})


def _blocks_by_hash(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_getBlockByHash"
    for n, block_hash in enumerate(f.block_hashes):
        c.add(f"get-block-{n}", m, [block_hash, False])
        c.add(f"get-block-{n}-full", m, [block_hash, True])
    c.add("unknown-hash", m, [UNKNOWN_HASH, False])
    c.add("unknown-hash-full", m, [UNKNOWN_HASH, True])
    c.add("short-hash", m, [f.block_hashes[1][:40], False])
    c.add("long-hash", m, [f.block_hashes[1] + "00", False])
    c.add("no-prefix", m, [f.block_hashes[1][2:], False])
    c.add("bad-hex", m, ["0x" + "zz" * 32, False])
    c.add("number-not-hash", m, ["0x1", False])
    c.add("missing-bool", m, [f.block_hashes[1]])
    c.add("empty-params", m, [])


def _block_counts(c: _Corpus, f: ChainFacts) -> None:
    for n in range(f.head + 1):
        c.add(f"count-{n}", "eth_getBlockTransactionCountByNumber", [hex(n)])
        c.add(f"count-{n}", "eth_getBlockTransactionCountByHash", [f.block_hashes[n]])
    for tag in ("latest", "earliest", "pending"):
        c.add(f"count-{tag}", "eth_getBlockTransactionCountByNumber", [tag])
    c.add("count-notfound", "eth_getBlockTransactionCountByNumber", [hex(f.head + 99)])
    c.add("count-bad", "eth_getBlockTransactionCountByNumber", ["four"])
    c.add("count-unknown", "eth_getBlockTransactionCountByHash", [UNKNOWN_HASH])
    c.add("count-bad", "eth_getBlockTransactionCountByHash", ["0x1234"])
    c.add("uncles", "eth_getUncleCountByBlockNumber", [hex(f.log_block)])
    c.add("uncles-latest", "eth_getUncleCountByBlockNumber", ["latest"])
    c.add("uncles", "eth_getUncleCountByBlockHash", [f.block_hashes[f.log_block]])
    c.add("uncles-unknown", "eth_getUncleCountByBlockHash", [UNKNOWN_HASH])
    c.add("uncle", "eth_getUncleByBlockNumberAndIndex", [hex(f.log_block), "0x0"])
    c.add("uncle", "eth_getUncleByBlockHashAndIndex", [f.block_hashes[f.log_block], "0x0"])


def _transactions(c: _Corpus, f: ChainFacts) -> None:
    for tx in f.txs:
        c.add(f"get-{tx.kind}", "eth_getTransactionByHash", [tx.hash])
        c.add(f"get-{tx.kind}", "eth_getTransactionReceipt", [tx.hash])
        c.add(
            f"get-{tx.kind}",
            "eth_getTransactionByBlockNumberAndIndex",
            [hex(tx.block_number), hex(tx.index)],
        )
        c.add(
            f"get-{tx.kind}",
            "eth_getTransactionByBlockHashAndIndex",
            [tx.block_hash, hex(tx.index)],
        )
    for m in ("eth_getTransactionByHash", "eth_getTransactionReceipt"):
        c.add("get-notfound-tx", m, [UNKNOWN_HASH])
        c.add("get-invalid-hash", m, ["0x1234"])
        c.add("no-prefix", m, [f.txs[0].hash[2:]])
        c.add("empty-params", m, [])
    by_number = "eth_getTransactionByBlockNumberAndIndex"
    c.add("index-out-of-range", by_number, [hex(f.log_block), "0x63"])
    c.add("block-notfound", by_number, [hex(f.head + 50), "0x0"])
    c.add("latest-index-0", by_number, ["latest", "0x0"])
    c.add("bad-index", by_number, [hex(f.log_block), "zero"])
    by_hash = "eth_getTransactionByBlockHashAndIndex"
    c.add("index-out-of-range", by_hash, [f.block_hashes[f.log_block], "0x63"])
    c.add("unknown-hash", by_hash, [UNKNOWN_HASH, "0x0"])


def _block_receipts(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_getBlockReceipts"
    for n in range(f.head + 1):
        c.add(f"get-block-receipts-{n}", m, [hex(n)])
    c.add("latest", m, ["latest"])
    c.add("earliest", m, ["earliest"])
    c.add("by-hash", m, [f.block_hashes[f.log_block]])
    c.add("by-hash-object", m, [{"blockHash": f.block_hashes[f.log_block]}])
    c.add("not-found", m, [hex(f.head + 7)])
    c.add("unknown-hash", m, [UNKNOWN_HASH])
    c.add("bad-number", m, ["seven"])


def _block_refs(f: ChainFacts) -> list[tuple[str, object]]:
    """EIP-1898 and tag block references for the state methods."""
    deploy_hash = f.block_hashes[f.deploy_block]
    return [
        ("latest", "latest"),
        ("earliest", "earliest"),
        ("pending", "pending"),
        ("safe", "safe"),
        ("finalized", "finalized"),
        ("before-deploy", hex(f.deploy_block - 1)),
        ("at-deploy", hex(f.deploy_block)),
        ("block-number-object", {"blockNumber": hex(f.deploy_block)}),
        ("block-hash-object", {"blockHash": deploy_hash}),
        ("require-canonical", {"blockHash": deploy_hash, "requireCanonical": True}),
        ("unknown-block-hash", {"blockHash": UNKNOWN_HASH}),
        ("future-block", hex(f.head + 100)),
    ]


def _state(c: _Corpus, f: ChainFacts) -> None:
    a = DEV_ACCOUNTS
    for label, ref in _block_refs(f):
        c.add(f"balance-{label}", "eth_getBalance", [a[0], ref])
        c.add(f"code-{label}", "eth_getCode", [f.emitter, ref])
    for i in (1, 2, 3, 9):
        c.add(f"balance-account-{i}", "eth_getBalance", [a[i], "latest"])
    c.add("balance-nobody", "eth_getBalance", [NOBODY, "latest"])
    c.add("balance-short-address", "eth_getBalance", [a[0][:20], "latest"])
    c.add("balance-omitted-block", "eth_getBalance", [a[0]])
    m = "eth_getTransactionCount"
    for label, ref in _block_refs(f)[:9]:
        c.add(f"nonce-{label}", m, [a[0], ref])
    c.add("nonce-unused-account", m, [a[9], "latest"])
    c.add("nonce-bad-address", m, ["0xnothex", "latest"])
    c.add("code-reverter", "eth_getCode", [f.reverter, "latest"])
    c.add("code-eoa", "eth_getCode", [a[0], "latest"])
    c.add("code-precompile", "eth_getCode", ["0x" + "00" * 19 + "01", "latest"])
    c.add("code-bad-address", "eth_getCode", ["0x1234", "latest"])
    m = "eth_getStorageAt"
    c.add("slot-0", m, [f.emitter, "0x0", "latest"])
    c.add("slot-0-full-width", m, [f.emitter, "0x" + "00" * 32, "latest"])
    c.add("slot-0-leading-zero", m, [f.emitter, "0x00", "latest"])
    c.add("slot-0-at-deploy", m, [f.emitter, "0x0", hex(f.deploy_block)])
    c.add("slot-0-at-log-block", m, [f.emitter, "0x0", {"blockHash": f.block_hashes[f.log_block]}])
    c.add("slot-1", m, [f.emitter, "0x1", "latest"])
    c.add("slot-eoa", m, [a[0], "0x0", "latest"])
    c.add("slot-bad-hex", m, [f.emitter, "0xzz", "latest"])
    c.add("slot-too-long", m, [f.emitter, "0x" + "01" * 33, "latest"])
    c.add("slot-omitted-block", m, [f.emitter, "0x0"])
    c.add("account", "eth_getAccount", [f.emitter, "latest"])
    c.add("account-eoa", "eth_getAccount", [a[0], hex(f.deploy_block)])


def _calls(c: _Corpus, f: ChainFacts) -> None:
    a = DEV_ACCOUNTS
    emit = {"from": a[0], "to": f.emitter, "data": "0xabcdef"}
    m = "eth_call"
    c.add("call-contract", m, [emit, "latest"])
    c.add("call-omitted-block", m, [emit])
    c.add("call-block-hash-object", m, [emit, {"blockHash": f.block_hashes[f.log_block]}])
    c.add("call-block-number-object", m, [emit, {"blockNumber": hex(f.log_block)}])
    c.add("call-before-deploy", m, [emit, hex(f.deploy_block - 1)])
    c.add("call-revert-abi-error", m, [{"to": f.reverter}, "latest"])
    c.add("call-revert-empty", m, [{"to": f.reverter, "data": "0x01"}, "latest"])
    c.add("call-simple-transfer", m, [{"from": a[0], "to": a[1], "value": "0x1"}, "latest"])
    c.add("call-unfunded-sender", m, [{"from": NOBODY, "to": a[1], "value": "0x1"}, "latest"])
    c.add("call-gas-too-low", m, [{"from": a[0], "to": a[1], "gas": "0x1"}, "latest"])
    c.add("call-create", m, [{"from": a[0], "data": EMITTER_INIT}, "latest"])
    c.add("call-input-field", m, [{"to": f.emitter, "input": "0x01"}, "latest"])
    c.add("call-input-and-data-differ", m, [{"to": f.emitter, "input": "0x01", "data": "0x02"}])
    c.add(
        "call-legacy-with-fee-fields",
        m,
        [{"to": a[1], "gasPrice": "0x1", "maxFeePerGas": "0x2"}, "latest"],
    )
    c.add(
        "call-priority-above-max",
        m,
        [{"to": a[1], "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x2"}, "latest"],
    )
    c.add(
        "call-state-override",
        m,
        [{"to": NOBODY}, "latest", {NOBODY: {"code": REVERTER_RUNTIME}}],
    )
    c.add("call-bad-to", m, [{"to": "0x12"}, "latest"])
    c.add("call-bad-data", m, [{"to": f.emitter, "data": "0xabc"}, "latest"])
    c.add("call-unknown-block-hash", m, [emit, {"blockHash": UNKNOWN_HASH}])
    c.add("call-future-block", m, [emit, hex(f.head + 100)])
    c.add("call-empty-params", m, [])


def _estimates(c: _Corpus, f: ChainFacts) -> None:
    a = DEV_ACCOUNTS
    m = "eth_estimateGas"
    c.add("transfer", m, [{"from": a[0], "to": a[1], "value": "0x1"}])
    c.add("contract-call", m, [{"from": a[0], "to": f.emitter, "data": "0xabcdef"}, "latest"])
    c.add("create", m, [{"from": a[0], "data": EMITTER_INIT}])
    c.add("revert-abi-error", m, [{"to": f.reverter}])
    c.add("revert-empty", m, [{"to": f.reverter, "data": "0x01"}])
    c.add("insufficient-funds", m, [{"from": a[0], "to": a[1], "value": "0x" + "f" * 40}])
    c.add("unfunded-sender", m, [{"from": NOBODY, "to": a[1], "value": "0x1"}])
    c.add("at-block", m, [{"from": a[0], "to": a[1]}, hex(f.deploy_block)])
    c.add("gas-cap-too-low", m, [{"from": a[0], "to": a[1], "gas": "0x5207"}])
    c.add("empty-params", m, [])
    m = "eth_createAccessList"
    c.add("contract-call", m, [{"from": a[0], "to": f.emitter, "data": "0x01"}, "latest"])
    c.add("revert", m, [{"from": a[0], "to": f.reverter}, "latest"])
    c.add("transfer", m, [{"from": a[0], "to": a[1], "value": "0x1"}, "latest"])
    c.add("at-block", m, [{"from": a[0], "to": f.emitter}, hex(f.log_block)])
    c.add("bad-params", m, [{"to": 5}])


def _logs(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_getLogs"
    log_hash = f.block_hashes[f.log_block]
    full = {"fromBlock": "0x0", "toBlock": "latest"}
    c.add("all-blocks", m, [full])
    c.add("empty-filter", m, [{}])
    c.add("earliest-to-latest", m, [{"fromBlock": "earliest", "toBlock": "latest"}])
    c.add("one-block", m, [{"fromBlock": hex(f.log_block), "toBlock": hex(f.log_block)}])
    c.add("contract-addr", m, [full | {"address": f.emitter}])
    c.add("address-list", m, [full | {"address": [f.emitter, f.reverter]}])
    c.add("address-without-logs", m, [full | {"address": DEV_ACCOUNTS[0]}])
    c.add("topic-exact-match", m, [full | {"topics": [EMITTER_TOPIC]}])
    c.add("topic-nested", m, [full | {"topics": [[EMITTER_TOPIC]]}])
    c.add("topic-or", m, [full | {"topics": [[OTHER_TOPIC, EMITTER_TOPIC]]}])
    c.add("topic-null-wildcard", m, [full | {"topics": [None]}])
    c.add("topic-wildcard-then-any", m, [full | {"topics": [None, OTHER_TOPIC]}])
    c.add("topic-no-match", m, [full | {"topics": [OTHER_TOPIC]}])
    c.add("topics-null", m, [full | {"address": None, "topics": None}])
    c.add("filter-with-blockHash", m, [{"blockHash": log_hash}])
    c.add(
        "filter-with-blockHash-and-topics", m, [{"blockHash": log_hash, "topics": [EMITTER_TOPIC]}]
    )
    c.add("filter-unknown-blockHash", m, [{"blockHash": UNKNOWN_HASH}])
    c.add(
        "filter-error-blockHash-and-range",
        m,
        [{"blockHash": log_hash, "fromBlock": "0x1", "toBlock": "0x2"}],
    )
    c.add("filter-error-reversed-block-range", m, [{"fromBlock": "0x5", "toBlock": "0x2"}])
    c.add(
        "filter-error-fully-future-block-range",
        m,
        [{"fromBlock": hex(f.head + 10), "toBlock": hex(f.head + 20)}],
    )
    c.add("filter-error-future-block-range", m, [{"fromBlock": "0x1", "toBlock": hex(f.head + 20)}])
    c.add("filter-error-future-block-to-latest", m, [{"fromBlock": hex(f.head + 10)}])
    c.add("bad-address", m, [full | {"address": "0x1234"}])
    c.add("too-many-topics", m, [full | {"topics": [EMITTER_TOPIC] * 5}])
    c.add("pending", m, [{"fromBlock": "pending", "toBlock": "pending"}])
    c.add("empty-params", m, [])


def _fee_history(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_feeHistory"
    c.add("one-block", m, ["0x1", "latest", []])
    c.add("percentiles", m, ["0x3", "latest", [25, 75]])
    c.add("integer-count", m, [4, "latest", [10, 50, 90]])
    c.add("fractional-percentiles", m, ["0x2", "latest", [12.5, 99.9]])
    c.add("zero-blocks", m, ["0x0", "latest", []])
    c.add("at-log-block", m, ["0x2", hex(f.log_block), [50]])
    c.add("more-than-chain", m, ["0x400", "latest", []])
    c.add("decreasing-percentiles", m, ["0x2", "latest", [90, 10]])
    c.add("percentile-over-100", m, ["0x2", "latest", [101]])
    c.add("future-newest", m, ["0x2", hex(f.head + 100), []])
    c.add("missing-percentiles", m, ["0x2", "latest"])
    c.add("earliest", m, ["0x1", "earliest", [50]])


def _proofs(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_getProof"
    slot0, slot1 = "0x" + "00" * 32, "0x" + "00" * 31 + "01"
    c.add("contract-slot-0", m, [f.emitter, [slot0], "latest"])
    c.add("contract-no-keys", m, [f.emitter, [], hex(f.deploy_block)])
    c.add("contract-two-keys", m, [f.emitter, [slot0, slot1], "latest"])
    c.add("short-key", m, [f.emitter, ["0x0"], "latest"])
    c.add("eoa", m, [DEV_ACCOUNTS[0], [], "latest"])
    c.add("bad-key", m, [f.emitter, ["0xzz"], "latest"])
    c.add("unknown-block", m, [f.emitter, [], {"blockHash": UNKNOWN_HASH}])


def _simulate(c: _Corpus, f: ChainFacts) -> None:
    a = DEV_ACCOUNTS
    m = "eth_simulateV1"
    transfer = {"from": a[0], "to": a[1], "value": "0x1"}
    c.add("simple-transfer", m, [{"blockStateCalls": [{"calls": [transfer]}]}, "latest"])
    c.add(
        "contract-call-with-logs",
        m,
        [
            {"blockStateCalls": [{"calls": [{"from": a[0], "to": f.emitter, "data": "0x0102"}]}]},
            "latest",
        ],
    )
    c.add("revert", m, [{"blockStateCalls": [{"calls": [{"to": f.reverter}]}]}, "latest"])
    c.add(
        "two-blocks-with-overrides",
        m,
        [
            {
                "blockStateCalls": [
                    {"blockOverrides": {"number": hex(f.head + 2)}, "calls": [transfer]},
                    {"blockOverrides": {"number": hex(f.head + 5)}, "calls": []},
                ],
                "traceTransfers": True,
            },
            "latest",
        ],
    )
    c.add(
        "full-transactions",
        m,
        [{"blockStateCalls": [{"calls": [transfer]}], "returnFullTransactions": True}, "latest"],
    )
    c.add("empty-block-state-calls", m, [{"blockStateCalls": []}, "latest"])


def _traces(c: _Corpus, f: ChainFacts) -> None:
    call_tracer = {"tracer": "callTracer"}
    m = "debug_traceTransaction"
    for tx in f.txs:
        c.add(f"calltracer-{tx.kind}", m, [tx.hash, call_tracer])
    for kind in ("transfer", "log", "reverted"):
        c.add(f"struct-logs-{kind}", m, [f.tx(kind).hash, {}])
    c.add("prestate-tracer", m, [f.tx("log").hash, {"tracer": "prestateTracer"}])
    c.add(
        "only-top-call",
        m,
        [f.tx("log").hash, call_tracer | {"tracerConfig": {"onlyTopCall": True}}],
    )
    c.add("trace-unknown-tx", m, [UNKNOWN_HASH, {}])
    m = "debug_traceCall"
    call = {"from": DEV_ACCOUNTS[0], "to": f.emitter, "data": "0x0a0b"}
    c.add("calltracer", m, [call, "latest", call_tracer])
    c.add("struct-logs", m, [call, "latest", {}])
    c.add("calltracer-revert", m, [{"to": f.reverter}, "latest", call_tracer])
    c.add("calltracer-block-hash", m, [call, f.block_hashes[f.log_block], call_tracer])
    c.add("calltracer-invalid-block", m, [call, hex(f.head + 100), call_tracer])
    m = "debug_traceBlockByNumber"
    c.add("calltracer-block-with-log", m, [hex(f.log_block), call_tracer])
    c.add("trace-genesis", m, ["0x0", call_tracer])
    c.add("trace-block-invalid-number", m, [hex(f.head + 100), call_tracer])
    m = "debug_traceBlockByHash"
    c.add("calltracer-block-with-transactions", m, [f.block_hashes[f.log_block], call_tracer])
    c.add("trace-block-not-found", m, [UNKNOWN_HASH, call_tracer])
    m = "debug_getRawTransaction"
    c.add("get-tx", m, [f.tx("transfer").hash])
    c.add("get-legacy-tx", m, [f.tx("legacy").hash])
    c.add("get-notfound-tx", m, [UNKNOWN_HASH])
    c.add("get-invalid-hash", m, ["0x12"])


def _raw_transactions(c: _Corpus, f: ChainFacts) -> None:
    m = "eth_sendRawTransaction"
    c.add("already-mined-nonce-too-low", m, [f.tx("transfer").raw])
    c.add("already-mined-legacy", m, [f.tx("legacy").raw])
    c.add("fee-below-base-fee", m, [f.underpriced_raw])
    c.add("truncated", m, [f.tx("transfer").raw[:60]])
    c.add("empty-bytes", m, ["0x"])
    c.add("one-zero-byte", m, ["0x00"])
    c.add("bad-hex", m, ["0xzz"])
    c.add("no-prefix", m, [f.tx("transfer").raw[2:]])
    c.add("empty-params", m, [])


_FAMILIES = (
    _node_info,
    _unknown_methods,
    _id_spellings,
    _blocks_by_number,
    _blocks_by_hash,
    _block_counts,
    _transactions,
    _block_receipts,
    _state,
    _calls,
    _estimates,
    _logs,
    _fee_history,
    _proofs,
    _simulate,
    _traces,
    _raw_transactions,
)
