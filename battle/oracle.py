"""The oracle: one drawn request through the gateway and straight to a node, judged.

The rules, first failure wins (:func:`judge`):

1. **Sound HTTP.** The gateway never answers 5xx, and its body is JSON (an empty
   body only where the node's is empty too: a batch of notifications).
2. **In time.** Never later than the method's deadline (:func:`lasso.core.methods.deadline_ms`,
   the longest of a batch's), plus ``SLACK_S`` for the answer to travel.
3. **Refused by design.** A method the gateway refuses (node-signed, node-admin,
   WebSocket-only: :func:`lasso.core.methods.disposition`) gets a JSON-RPC error with the
   client's id; it is never sent to the node. So does a body nested deeper than
   ``max_json_depth``, which the gateway refuses before parsing it further.
4. **The envelope check is the gateway's own.** A body or batch item that is not a
   valid JSON-RPC request (-32700 parse error, -32600 invalid request, an empty batch)
   is answered by the gateway itself, in its own words and over HTTP with status 400
   (the reference design's; a node's own wording and status vary by client): the node
   must have refused it with the same code. One exception: params that are not an
   array or an object are -32600 at the gateway (JSON-RPC 2.0: params MUST be structured)
   while anvil says -32600 for most such values but -32602 for floats and numbers past
   2**64 (-32601 for a method it lacks), and geth -32602 ("non-array args") for all;
   any of these codes passes.
5. **The node's answer.** Otherwise the answer must be the node's, byte for byte, as the
   transparency corpus judges it (:func:`lasso.corpus.difference`: status, id, result,
   error code, message and data; anvil's WebSocket wording counts as the node's, since
   the gateway may forward over either). For batches, item by item, then the framing
   (a batch anvil refuses whole over HTTP, past its body limit, is judged against its
   item-by-item WebSocket answer).
6. **Non-deterministic methods** (:data:`VOLATILE`: fee estimates, the mempool, client
   and sync status, gateway-served filters whose ids are the gateway's own, anything at
   the ``pending`` block) must keep the client's id and the answer's JSON shape, and when
   both error, the errors must be of the same class
   (:func:`lasso.core.classify.classify_rpc_error`) as the node's HTTP or WebSocket
   answer. ``eth_newFilter`` is validated by the gateway as geth does: where anvil
   accepts a filter geth refuses (:data:`GETH_FILTER_REFUSALS`), or refuses one with an
   unknown member that geth ignores, the gateway's geth answer passes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import msgspec

from battle.strategies import NO_ID as _NO_ID
from battle.strategies import Drawn
from lasso.core.classify import classify_rpc_error
from lasso.core.filter_params import FILTER_METHODS
from lasso.core.methods import Disposition, deadline_ms, disposition
from lasso.corpus import Answer, CorpusRequest, batch_differences, difference, shape

SLACK_S = 1.0
MAX_JSON_DEPTH = 64  # the default [server] max_json_depth

#: Methods whose answer may rightly differ between the gateway and one node, and why.
VOLATILE: dict[str, str] = {
    **dict.fromkeys(
        ("eth_gasPrice", "eth_maxPriorityFeePerGas", "eth_blobBaseFee"),
        "a fee estimate: each node's own, and it moves",
    ),
    **dict.fromkeys(("txpool_status", "txpool_content", "txpool_inspect"), "each node's mempool"),
    **dict.fromkeys(
        ("web3_clientVersion", "eth_syncing", "net_peerCount", "eth_hashrate", "eth_mining"),
        "the status of whichever node answered",
    ),
    **dict.fromkeys(
        FILTER_METHODS, "filters are the gateway's own (its ids, its state), not the node's"
    ),
}


class Verdict(msgspec.Struct, frozen=True):
    """The judgement of one request: which rule decided it, and why it failed if it did."""

    ok: bool
    rule: str
    reason: str = ""
    node: Answer | None = None
    lasso: Answer | None = None

    def __str__(self) -> str:
        lines = [f"{'ok' if self.ok else 'FAIL'} [{self.rule}] {self.reason}"]
        for name, answer in (("node", self.node), ("lasso", self.lasso)):
            if answer is not None:
                text = answer.body.decode("utf-8", "replace")[:300]
                lines.append(f"  {name + ':':6s} HTTP {answer.status} {text}")
        return "\n".join(lines)

    def answers(self, node: Answer | None, lasso: Answer) -> Verdict:
        return msgspec.structs.replace(self, node=node, lasso=lasso)


OK = Verdict(True, "node's answer")


def volatile_reason(request: CorpusRequest) -> str | None:
    if request.method in VOLATILE:
        return VOLATILE[request.method]
    if b'"pending"' in request.body:
        return "the pending block is built at ask time"
    return None


def refused(drawn: Drawn) -> bool:
    """Whether the gateway refuses this body by design (never sent to the node)."""
    single = not drawn.batch and drawn.requests[0]
    if single and disposition(single.method, b"[]") in (Disposition.BLOCKED, Disposition.DENIED):
        return True
    if single and disposition(single.method, b"[]") is Disposition.WS_ONLY:
        return True
    return json_depth(json.loads(drawn.body)) > MAX_JSON_DEPTH


def deadline_s(drawn: Drawn) -> float:
    return max((deadline_ms(r.method) for r in drawn.requests), default=1_000) / 1000


def judge(
    drawn: Drawn, lasso: Answer, elapsed_s: float, node: Answer | None, node_ws: Answer | None
) -> Verdict:
    """Judge ``lasso``'s answer to ``drawn`` against the node's (None when refused)."""
    return _judge(drawn, lasso, elapsed_s, node, node_ws).answers(node, lasso)


def _judge(
    drawn: Drawn, lasso: Answer, elapsed_s: float, node: Answer | None, node_ws: Answer | None
) -> Verdict:
    if lasso.status is not None and lasso.status >= 500:
        return Verdict(False, "sound HTTP", f"HTTP {lasso.status}")
    if elapsed_s > deadline_s(drawn) + SLACK_S:
        return Verdict(False, "in time", f"{elapsed_s:.2f} s > deadline {deadline_s(drawn)} s")
    body = decode_json(lasso.body)
    silent = node.body == b"" if node is not None else _all_notifications(drawn)
    if body is _BAD and not (lasso.body == b"" and silent):
        return Verdict(False, "sound HTTP", f"not JSON: {lasso.body[:80]!r}")
    if node is None:
        return _judge_refusal(drawn, body)
    requests = tuple(_marked(r) for r in drawn.requests)
    if drawn.batch:
        answered = [r for r in requests if r.request_id is not _NO_ID]
        node = _items_over_ws(node, node_ws)
        node_items = decode_json(node.body)
        if isinstance(node_items, list) and len(node_items) != len(answered):
            # The node answered a "notification" it could not read: align by its answers.
            answered = [_item(i) for i in range(len(node_items))]
        if answered:
            found = [
                d
                for d in batch_differences(answered, "http", node, lasso, node_ws)
                if not _envelope_refusal(d.node, d.lasso)
                and not _geth_filter_rules(d.request, d.node, d.lasso)
            ]
            if found:
                d = found[0]
                return Verdict(False, "node's answer", f"{d.request.name}: {d.cause}")
            return OK
        requests = (CorpusRequest("(batch)", "(batch)", drawn.body, None),)
    if _envelope_refusal(node, lasso):
        return Verdict(True, "envelope check")
    if _geth_filter_rules(requests[0], node, lasso):
        return Verdict(True, "gateway filters validate as geth")
    found_one = difference(requests[0], "http", node, lasso, node_ws)
    if found_one is not None:
        return Verdict(False, "node's answer", found_one.cause)
    if requests[0].volatile is not None:
        verdict = _same_class(node, lasso)
        if not verdict.ok and node_ws is not None and _same_class(node_ws, lasso).ok:
            # anvil's HTTP and WebSocket answers can differ in class (net_peerCount with a
            # 2**70 param: -32601 over HTTP, -32602 over WS); the gateway may use either.
            return Verdict(True, "non-deterministic: as the node answers over WebSocket")
        return verdict
    return OK


def _items_over_ws(node: Answer, node_ws: Answer | None) -> Answer:
    """The node's batch answer item by item: anvil refuses a body past its HTTP limit
    (about 2 MB) whole (one -32600, id null) but answers it item by item over WebSocket,
    as the gateway (whose own limit is larger) may forward it."""
    if node_ws is None or isinstance(decode_json(node.body), list):
        return node
    return (
        Answer(node.status, node_ws.body) if isinstance(decode_json(node_ws.body), list) else node
    )


def _judge_refusal(drawn: Drawn, body: Any) -> Verdict:
    rule = "refused by design"
    items = body if drawn.batch and isinstance(body, list) else [body]
    errors = [i for i in items if isinstance(i, dict) and isinstance(i.get("error"), dict)]
    # In a batch only the item nested too deep is refused; the others are answered.
    if body is _BAD:
        return Verdict(True, rule, "a batch of notifications only: nothing to answer")
    if not errors or (not drawn.batch and len(errors) != len(items)):
        return Verdict(False, rule, "not a JSON-RPC error")
    if not drawn.batch:
        want = drawn.requests[0].request_id
        got = body.get("id")
        if json_depth(json.loads(drawn.body)) <= MAX_JSON_DEPTH and not _same_id(want, got):
            return Verdict(False, rule, f"id {want!r} came back as {got!r}")
    return Verdict(True, rule)


#: geth's own refusals of a filter (``EventSystem.SubscribeLogs``), which the gateway's
#: filters apply (lasso/core/filter_params.py) where anvil accepts the filter.
GETH_FILTER_REFUSALS = frozenset(
    {"invalid from and to block combination", "pending logs are not supported"}
)


def _geth_filter_rules(request: CorpusRequest, node: Answer, lasso: Answer) -> bool:
    """The gateway's filter followed geth where anvil differs: it refused a filter geth
    refuses, or accepted params anvil refuses (-32602) and geth takes: an unknown filter
    member (geth ignores it), ``eth_newPendingTransactionFilter``'s optional ``fullTx``."""
    if request.method not in _NEW_FILTER:
        return False
    got, want = decode_json(lasso.body), decode_json(node.body)
    error = got.get("error") if isinstance(got, dict) else None
    if isinstance(error, dict):
        return error.get("message") in GETH_FILTER_REFUSALS
    node_error = want.get("error") if isinstance(want, dict) else None
    return isinstance(node_error, dict) and node_error.get("code") == -32602


_NEW_FILTER = frozenset({"eth_newFilter", "eth_newBlockFilter", "eth_newPendingTransactionFilter"})
_ENVELOPE_CODES = (-32700, -32600)


def _envelope_refusal(node: Answer, lasso: Answer) -> bool:
    """The gateway refused the envelope itself, and the node refused it with the same code."""
    want, got = decode_json(node.body), decode_json(lasso.body)
    if lasso.status not in (None, 400) or not isinstance(got, dict):
        return False
    code = got.get("error", {}).get("code") if isinstance(got.get("error"), dict) else None
    if code not in _ENVELOPE_CODES or not isinstance(want, dict):
        return False
    node_error = want.get("error")
    if not isinstance(node_error, dict) or not _same_id(want.get("id"), got.get("id")):
        return False
    codes = {code}
    if "params must be an array" in str(got["error"].get("message")):
        codes |= {-32602, -32601}
    return node_error.get("code") in codes


def _same_class(node: Answer, lasso: Answer) -> Verdict:
    want, got = decode_json(node.body), decode_json(lasso.body)
    if not (isinstance(want, dict) and isinstance(got, dict)):
        return OK
    if isinstance(want.get("error"), dict) and isinstance(got.get("error"), dict):
        a, b = _category(want["error"]), _category(got["error"])
        if a != b:
            return Verdict(False, "same error class", f"node {a}, gateway {b}")
    elif shape(want) != shape(got):
        return Verdict(False, "same shape", f"{shape(want)} -> {shape(got)}")
    return Verdict(True, "non-deterministic: same shape and error class")


def _category(error: dict[str, Any]) -> str:
    data = error.get("data")
    raw = None if data is None else json.dumps(data).encode()
    code = error.get("code")
    code = code if isinstance(code, int) else 0
    return classify_rpc_error(code, str(error.get("message", "")), raw).category.name


def _all_notifications(drawn: Drawn) -> bool:
    return drawn.batch and all(r.request_id is _NO_ID for r in drawn.requests)


def _item(index: int) -> CorpusRequest:
    return CorpusRequest(f"(item {index})", "(batch item)", b"", None)


def _marked(request: CorpusRequest) -> CorpusRequest:
    why = volatile_reason(request)
    return request if why is None else dataclasses.replace(request, volatile=why)


def _same_id(want: object, got: object) -> bool:
    return json.dumps(want) == json.dumps(got)


_BAD = object()


def decode_json(body: bytes) -> Any:
    """The JSON value of ``body``, or ``_BAD`` if it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return _BAD


def json_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    return 0
