"""Request families that read state or execute: balances, nonces, code and
storage at EIP-1898 block references, calls and reverts, gas estimates,
access lists, log filters, fee history, proofs, simulations, traces and raw
transactions the node refuses."""

from __future__ import annotations

from collections.abc import Callable

from lasso.corpus.contracts import EMITTER_INIT, EMITTER_TOPIC, REVERTER_RUNTIME
from lasso.corpus.requests import NOBODY, OTHER_TOPIC, UNKNOWN_HASH, Corpus
from lasso.corpus.seed import ChainFacts
from lasso.devnet import DEV_ACCOUNTS


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


def _state(c: Corpus, f: ChainFacts) -> None:
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


def _calls(c: Corpus, f: ChainFacts) -> None:
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


def _estimates(c: Corpus, f: ChainFacts) -> None:
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


def _logs(c: Corpus, f: ChainFacts) -> None:
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


def _fee_history(c: Corpus, f: ChainFacts) -> None:
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


def _proofs(c: Corpus, f: ChainFacts) -> None:
    m = "eth_getProof"
    slot0, slot1 = "0x" + "00" * 32, "0x" + "00" * 31 + "01"
    c.add("contract-slot-0", m, [f.emitter, [slot0], "latest"])
    c.add("contract-no-keys", m, [f.emitter, [], hex(f.deploy_block)])
    c.add("contract-two-keys", m, [f.emitter, [slot0, slot1], "latest"])
    c.add("short-key", m, [f.emitter, ["0x0"], "latest"])
    c.add("eoa", m, [DEV_ACCOUNTS[0], [], "latest"])
    c.add("bad-key", m, [f.emitter, ["0xzz"], "latest"])
    c.add("unknown-block", m, [f.emitter, [], {"blockHash": UNKNOWN_HASH}])


def _simulate(c: Corpus, f: ChainFacts) -> None:
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


def _traces(c: Corpus, f: ChainFacts) -> None:
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


def _raw_transactions(c: Corpus, f: ChainFacts) -> None:
    m = "eth_sendRawTransaction"
    # A mined transaction sent again is answered with its hash (lasso.transactions); a
    # different one reusing its nonce gets the node's "nonce too low".
    c.add("used-nonce-nonce-too-low", m, [f.used_nonce_raws[0]])
    c.add("used-nonce-legacy", m, [f.used_nonce_raws[1]])
    c.add("fee-below-base-fee", m, [f.underpriced_raw])
    c.add("truncated", m, [f.tx("transfer").raw[:60]])
    c.add("empty-bytes", m, ["0x"])
    c.add("one-zero-byte", m, ["0x00"])
    c.add("bad-hex", m, ["0xzz"])
    c.add("no-prefix", m, [f.tx("transfer").raw[2:]])
    c.add("empty-params", m, [])


FAMILIES: tuple[Callable[[Corpus, ChainFacts], None], ...] = (
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
