"""Backfilled heads shaped exactly like each client's live newHeads payloads.

The fixtures follow the real encoders: geth and erigon print newHeads with their
``types.Header`` JSON (gencodec field order, ``hash`` last, unset optional fields as
``null``; erigon adds its untagged ``Verkle*`` fields), while their
``eth_getBlockByNumber`` answers are Go maps, so the keys come alphabetically, with
``size``, ``uncles``, ``transactions`` and ``withdrawals`` added and unset fields left
out. anvil's live heads are its full block (transaction hashes included), captured from
anvil 1.7.1.
"""

from __future__ import annotations

from typing import Any

from lasso.core.subs import GETH_HEAD_FIELDS, HeadShape, HeadStream

TX = "0xa23b52004fe574000765fbe20a311b2785a318c9dbe6b0bf6a4c1f8936f57ff3"
VALUES: dict[str, Any] = {
    "hash": "0x22a208813ff75e0ba5a6cc00d5a8d99a8aa613dc7a0008426530c9a43b0e90fe",
    "parentHash": "0x927c4d86a559ce46f3c24afe75346b8a6e1449738048968b2d529a71dce37620",
    "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
    "miner": "0x0000000000000000000000000000000000000000",
    "stateRoot": "0x94b7e9b4038594758857d7621d3e3c95ff85205320689dd237892fc88fd7cf08",
    "transactionsRoot": "0x6dd9a37bc24f352bcab791cc4ff2ed174a0ab4ea0d24910a1c27eb24435f9d4f",
    "receiptsRoot": "0xf78dfb743fbd92ade140711c8bbc542b5e307f0ab7984eff35d751969fe57efa",
    "logsBloom": "0x" + "00" * 256,
    "difficulty": "0x0",
    "number": "0x1",
    "gasLimit": "0x1c9c380",
    "gasUsed": "0x5208",
    "timestamp": "0x6b01820a",
    "extraData": "0x",
    "mixHash": "0x79ef6a1037723416ab94cf0f9316a070ad13fe4073c63e0f528054651c378332",
    "nonce": "0x0000000000000000",
    "baseFeePerGas": "0x3b9aca00",
    "withdrawalsRoot": "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421",
    "blobGasUsed": "0x0",
    "excessBlobGas": "0x0",
    "parentBeaconBlockRoot": "0x" + "00" * 32,
    "requestsHash": "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "totalDifficulty": "0x0",
    "size": "0x2db",
    "uncles": [],
    "transactions": [TX],
    "withdrawals": [],
}
FULL_TX = {"hash": TX, "type": "0x2", "nonce": "0x0", "from": "0xf39f" + "00" * 18, "value": "0x1"}
ANVIL_LIVE_ORDER = [
    "hash",
    "parentHash",
    "sha3Uncles",
    "miner",
    "stateRoot",
    "transactionsRoot",
    "receiptsRoot",
    "logsBloom",
    "difficulty",
    "number",
    "gasLimit",
    "gasUsed",
    "timestamp",
    "extraData",
    "mixHash",
    "nonce",
    "baseFeePerGas",
    "withdrawalsRoot",
    "blobGasUsed",
    "excessBlobGas",
    "parentBeaconBlockRoot",
    "requestsHash",
    "totalDifficulty",
    "size",
    "uncles",
    "transactions",
    "withdrawals",
]
ERIGON_LIVE_ORDER = [*GETH_HEAD_FIELDS[:-1], "Verkle", "VerkleProof", "VerkleKeyVals", "hash"]
PRE_CANCUN = ("blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash")


def build(order: list[str] | tuple[str, ...], **override: Any) -> dict[str, Any]:
    values = {**VALUES, "Verkle": False, "VerkleProof": None, "VerkleKeyVals": None, **override}
    return {k: values[k] for k in order}


def geth_get_block(*, without: tuple[str, ...] = (), full: bool = False) -> dict[str, Any]:
    """eth_getBlockByNumber from geth: alphabetical keys, unset fields left out."""
    fields = [*GETH_HEAD_FIELDS, "size", "uncles", "transactions", "withdrawals"]
    block = build(sorted(f for f in fields if f not in without))
    if full:
        block["transactions"] = [FULL_TX]
    return block


def test_default_shape_is_geths_newheads_header() -> None:
    shape = HeadShape()
    assert not shape.learned
    assert shape.fields == GETH_HEAD_FIELDS
    projected = shape.project(geth_get_block())
    assert projected == build(GETH_HEAD_FIELDS)
    assert list(projected) == list(GETH_HEAD_FIELDS)  # gencodec order, not alphabetical


def test_geth_pre_fork_fields_stay_null_like_live() -> None:
    live = build(GETH_HEAD_FIELDS, **dict.fromkeys(PRE_CANCUN))
    shape = HeadShape()
    shape.learn(live)
    projected = shape.project(geth_get_block(without=PRE_CANCUN))
    assert projected == live
    assert list(projected) == list(live)


def test_anvil_live_heads_keep_transaction_hashes() -> None:
    live = build(ANVIL_LIVE_ORDER)
    shape = HeadShape()
    shape.learn(live)
    assert shape.learned
    for block in (geth_get_block(), geth_get_block(full=True), build(ANVIL_LIVE_ORDER)):
        block = {**block, "totalDifficulty": "0x0"}
        projected = shape.project(block)
        assert projected == live
        assert list(projected) == ANVIL_LIVE_ORDER
        assert projected["transactions"] == [TX]  # never full objects


def test_erigon_live_shape_with_its_untagged_fields() -> None:
    live = build(ERIGON_LIVE_ORDER, **dict.fromkeys(PRE_CANCUN))
    shape = HeadShape()
    shape.learn(live)
    projected = shape.project(geth_get_block(without=PRE_CANCUN))
    # Nulls are reproduced; a non-null live-only field (Verkle: false) cannot be invented.
    assert projected == {k: v for k, v in live.items() if k != "Verkle"}
    assert list(projected) == [f for f in ERIGON_LIVE_ORDER if f != "Verkle"]


def test_a_fork_adds_fields_and_the_latest_live_head_wins() -> None:
    shape = HeadShape()
    shape.learn(build((*GETH_HEAD_FIELDS[:-2], "hash")))  # before requestsHash
    assert "requestsHash" not in shape.project(geth_get_block())
    shape.learn(build(GETH_HEAD_FIELDS))
    assert shape.project(geth_get_block()) == build(GETH_HEAD_FIELDS)


def test_odd_transactions_values_pass_through() -> None:
    shape = HeadShape()
    shape.learn({"hash": "0x1", "transactions": []})
    assert shape.project({"hash": "0x1", "transactions": "0xdead"}) == {
        "hash": "0x1",
        "transactions": "0xdead",
    }
    assert shape.project({"hash": "0x1", "transactions": [{"nonce": "0x0"}, TX]}) == {
        "hash": "0x1",
        "transactions": [None, TX],
    }


def test_the_head_stream_learns_from_live_and_projects_backfill() -> None:
    stream = HeadStream()
    live = build(ANVIL_LIVE_ORDER)
    stream.offer(live)
    nxt = {
        **geth_get_block(full=True),
        "number": "0x2",
        "hash": "0x" + "ab" * 32,
        "parentHash": VALUES["hash"],
    }
    (delivered,) = stream.offer_backfill([nxt]).deliver
    # geth's block has no totalDifficulty, so it is left out; the rest is anvil's order.
    assert list(delivered.payload) == [f for f in ANVIL_LIVE_ORDER if f != "totalDifficulty"]
    assert delivered.payload["transactions"] == [TX]
    assert delivered.raw is None
