"""Compare Lasso's answer to a node's, and show the differences as a table.

Pure functions: the test gathers the answers, these decide whether a client
could tell them apart and name the cause, so a failure reads at a glance.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from lasso.corpus.requests import CorpusRequest

_CELL = 150


@dataclass(frozen=True)
class Answer:
    """What came back: the HTTP status (None over a WebSocket) and the body bytes."""

    status: int | None
    body: bytes


@dataclass(frozen=True)
class Difference:
    request: CorpusRequest
    via: str  # "http" or "ws"
    node: Answer
    lasso: Answer
    cause: str
    node_ws: Answer | None = None


def difference(
    request: CorpusRequest, via: str, node: Answer, lasso: Answer, node_ws: Answer | None = None
) -> Difference | None:
    """None when a client could not tell ``lasso`` from ``node``; else why it could.

    ``node_ws`` is the same node's answer over its own WebSocket. Anvil words
    some errors differently there (any request it cannot parse becomes -32602
    "data did not match any variant of untagged enum EthRpcCall"), and Lasso
    may forward over either transport, so either answer is the node's own.
    """
    cause = _cause(request, node, lasso)
    if cause is not None and node_ws is not None and node_ws.body != node.body:
        as_ws = Answer(node.status, node_ws.body)
        cause = None if _cause(request, as_ws, lasso) is None else cause
    return None if cause is None else Difference(request, via, node, lasso, cause, node_ws)


def batch_differences(
    requests: Sequence[CorpusRequest],
    via: str,
    node: Answer,
    lasso: Answer,
    node_ws: Answer | None = None,
) -> list[Difference]:
    """Compare the answers to one batch of ``requests``, item by item, then the framing.

    Items are matched by position (the node answers in request order); if
    every item passes, Lasso's array must still be framed as the node's is.
    """
    batch = CorpusRequest(
        f"(batch of {len(requests)}: {requests[0].name} ...)", "(batch)", batch_body(requests), None
    )
    node_items, lasso_items = _items(node.body), _items(lasso.body)
    ws_items = _items(node_ws.body) if node_ws is not None else None
    if node_items is None or lasso_items is None or len(lasso_items) != len(node_items):
        return [Difference(batch, via, node, lasso, "batch not answered item for item", node_ws)]
    if lasso.status is not None and lasso.status != node.status:
        return [Difference(batch, via, node, lasso, f"HTTP status {node.status} -> {lasso.status}")]
    found: list[Difference] = []
    for i, (request, want, got) in enumerate(zip(requests, node_items, lasso_items, strict=True)):
        alternative = Answer(None, ws_items[i]) if ws_items and len(ws_items) > i else None
        if item := difference(request, via, Answer(None, want), Answer(None, got), alternative):
            found.append(item)
    if not found and lasso.body != b"[" + b",".join(lasso_items) + b"]":
        found.append(Difference(batch, via, node, lasso, "batch framing", node_ws))
    return found


_decode_items = msgspec.json.Decoder(list[msgspec.Raw]).decode


def _items(body: bytes) -> list[bytes] | None:
    try:
        return [bytes(item) for item in _decode_items(body)]
    except msgspec.DecodeError:
        return None


def batch_body(requests: Sequence[CorpusRequest]) -> bytes:
    """The requests as one JSON-RPC batch."""
    return b"[" + b",".join(r.body for r in requests) + b"]"


def _cause(request: CorpusRequest, node: Answer, lasso: Answer) -> str | None:
    if lasso.status is not None and lasso.status != node.status:
        return f"HTTP status {node.status} -> {lasso.status}"
    if request.volatile is None and lasso.body == node.body:
        return None
    want, got = _decode(node.body), _decode(lasso.body)
    if got is None:
        return "not JSON"
    if want is None or not isinstance(want, dict) or not isinstance(got, dict):
        return "body bytes"
    if json.dumps(got.get("id")) != json.dumps(want.get("id")):
        return "id changed"
    if _raw_id(lasso.body) != _raw_id(node.body):
        return "id spelled differently (same value)"
    if request.volatile is not None:
        return None if shape(want) == shape(got) else "shape (volatile answer)"
    return _answer_cause(want, got)


def _answer_cause(want: dict[str, Any], got: dict[str, Any]) -> str:
    if "error" in want and "error" in got:
        w, g = want["error"], got["error"]
        if not isinstance(w, dict) or not isinstance(g, dict):
            return "error bytes"
        if w.get("code") != g.get("code"):
            return f"error code {w.get('code')} -> {g.get('code')}"
        if w.get("message") != g.get("message"):
            return "error message"
        if w.get("data") != g.get("data"):
            return "error data"
        return "error bytes (same fields)"
    if "error" in want:
        return "node error -> Lasso result"
    if "error" in got:
        code = got["error"].get("code") if isinstance(got["error"], dict) else "?"
        return f"node result -> Lasso error {code}"
    if want.get("result") != got.get("result"):
        return "result value"
    return "result bytes (same value)"


class _Envelope(msgspec.Struct):
    id: msgspec.Raw = msgspec.Raw(b"")


def _raw_id(body: bytes) -> bytes:
    try:
        return bytes(msgspec.json.decode(body, type=_Envelope).id)
    except msgspec.DecodeError:
        return b""


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def shape(value: Any) -> Any:
    """The JSON shape of ``value``: object keys and value kinds, not the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, str):
        return "hex" if value.startswith("0x") else "str"
    return type(value).__name__


def causes(differences: Iterable[Difference]) -> Counter[tuple[str, str]]:
    """How many differences each (transport, cause) has."""
    return Counter((d.via, d.cause) for d in differences)


def table(differences: Iterable[Difference]) -> str:
    """A compact table: one row per difference, the request and both answers."""
    rows = list(differences)
    lines = [f"{len(rows)} answers differ from the node's:"]
    for (via, cause), count in sorted(causes(rows).items()):
        lines.append(f"  {count:4d}  {via:4s}  {cause}")
    for d in rows:
        lines.append("")
        lines.append(f"[{d.via}] {d.request.name}  ({d.cause})")
        lines.append(f"  request: {_cell(d.request.body)}")
        lines.append(f"  node:    {_cell(d.node.body, d.node.status)}")
        if d.node_ws is not None and d.node_ws.body != d.node.body:
            lines.append(f"  node/ws: {_cell(d.node_ws.body)}")
        lines.append(f"  lasso:   {_cell(d.lasso.body, d.lasso.status)}")
    return "\n".join(lines)


def _cell(body: bytes, status: int | None = None) -> str:
    text = body.decode("utf-8", "replace")
    text = text if len(text) <= _CELL else text[: _CELL - 3] + "..."
    return text if status in (None, 200) else f"HTTP {status} {text}"
