"""One request of the corpus, its id, and the builder the request families add to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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


class Corpus:
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
