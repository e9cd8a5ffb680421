"""Request families about the chain itself: node information, unknown methods,
id spellings, blocks by number and by hash, transaction counts, transactions
and receipts."""

from __future__ import annotations

from collections.abc import Callable

from lasso.corpus.requests import UNKNOWN_HASH, Corpus
from lasso.corpus.seed import ChainFacts


def _node_info(c: Corpus, f: ChainFacts) -> None:
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


def _unknown_methods(c: Corpus, f: ChainFacts) -> None:
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


def _id_spellings(c: Corpus, f: ChainFacts) -> None:
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


def _blocks_by_number(c: Corpus, f: ChainFacts) -> None:
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


def _blocks_by_hash(c: Corpus, f: ChainFacts) -> None:
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


def _block_counts(c: Corpus, f: ChainFacts) -> None:
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


def _transactions(c: Corpus, f: ChainFacts) -> None:
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


def _block_receipts(c: Corpus, f: ChainFacts) -> None:
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


FAMILIES: tuple[Callable[[Corpus, ChainFacts], None], ...] = (
    _node_info,
    _unknown_methods,
    _id_spellings,
    _blocks_by_number,
    _blocks_by_hash,
    _block_counts,
    _transactions,
    _block_receipts,
)
