"""What a battle run records: events with times passed in, and the bounded recorder.

Every event is a frozen msgspec Struct; every time is monotonic seconds given by the caller
(``trio.current_time()`` in the harness), so the SLOs in :mod:`battle.slo` are plain functions
of a recording and tests build recordings by hand.

The :class:`Recorder` is append-only and bounded per kind: once a kind holds ``limit`` events it
keeps the first ``limit`` and counts the rest in ``dropped`` (a prefix stays exact for gap and
regression counting; the SLO report carries the drop count so a truncated run is visible).
:func:`encode_jsonl` / :func:`decode_jsonl` round-trip a :class:`Recording` losslessly.
"""

from __future__ import annotations

import enum
from typing import TypeVar

import msgspec

#: A JSON-RPC id as the harness sends and reads it; ``None`` is JSON ``null`` or absent.
JsonId = int | str | None


class Outcome(enum.Enum):
    """How the gateway answered one request."""

    RESULT = "result"  # a JSON-RPC response with "result"
    JSONRPC_ERROR = "jsonrpc_error"  # a JSON-RPC response with "error" (code in error_code)
    NON_JSON = "non_json"  # a body that is not JSON, or JSON that is not a JSON-RPC response
    HTTP_5XX = "http_5xx"  # an HTTP 5xx status whose body is not a JSON-RPC response
    HTML = "html"  # an HTML page
    TIMEOUT = "timeout"  # no answer before the harness's deadline (a hang)


class SubscriptionKind(enum.Enum):
    HEADS = "newHeads"
    LOGS = "logs"


class RequestEvent(msgspec.Struct, frozen=True, tag="request"):
    """One request sent to the gateway and what came back.

    ``error_expected`` is the oracle's verdict for a JSON-RPC error: the provider asked directly
    gave an error of the same class (a fuzzed invalid parameter), so the error is a correct
    answer. ``block`` is the block number a read asked for, and ``empty_result`` says it was
    answered ``null`` or ``[]`` (for read-your-head misses).
    """

    scenario: str
    client: str
    transport: str  # "http" or "ws"
    method: str
    sent_at: float
    answered_at: float | None  # None: no answer (a hang), outcome TIMEOUT
    http_status: int | None
    outcome: Outcome
    sent_id: JsonId = None
    received_id: JsonId = None
    error_code: int | None = None
    error_expected: bool = False
    provider: str | None = None  # the provider that served it, from routing metadata
    block: int | None = None
    empty_result: bool = False
    cache: str | None = None  # x-lasso-cache: "hit" when Lasso's response cache answered


class SubscriptionEvent(msgspec.Struct, frozen=True, tag="subscription"):
    """One notification a client received on a subscription.

    For ``newHeads`` it is a head (number, hash, parent). For ``logs`` it is one log: ``hash``
    and ``parent_hash`` are its block's, ``log_index`` tells logs of one block apart, and
    ``removed`` is the log's reorg flag.
    """

    client: str
    subscription: str
    kind: SubscriptionKind
    number: int
    hash: str
    parent_hash: str
    received_at: float
    removed: bool = False
    log_index: int | None = None


class ChaosEvent(msgspec.Struct, frozen=True, tag="chaos"):
    """A fault injected by the harness; ``target`` None means every provider."""

    kind: str
    target: str | None
    started_at: float
    ended_at: float | None = None  # None: not ended before the recording stopped


class HeadObservation(msgspec.Struct, frozen=True, tag="head"):
    """A head number a client was told (an ``eth_blockNumber`` answer)."""

    client: str
    number: int
    at: float


class ResourceSample(msgspec.Struct, frozen=True, tag="resource"):
    """The gateway process's resident set size at one moment."""

    rss_bytes: int
    at: float


Event = RequestEvent | SubscriptionEvent | ChaosEvent | HeadObservation | ResourceSample


_E = TypeVar("_E", RequestEvent, SubscriptionEvent, ChaosEvent, HeadObservation, ResourceSample)


class Dropped(msgspec.Struct, frozen=True, tag="dropped"):
    """How many events of each kind the recorder refused once full."""

    request: int = 0
    subscription: int = 0
    chaos: int = 0
    head: int = 0
    resource: int = 0

    def total(self) -> int:
        return self.request + self.subscription + self.chaos + self.head + self.resource


class Recording(msgspec.Struct, frozen=True):
    """Everything one run recorded, per kind in the order recorded."""

    requests: tuple[RequestEvent, ...] = ()
    subscriptions: tuple[SubscriptionEvent, ...] = ()
    chaos: tuple[ChaosEvent, ...] = ()
    heads: tuple[HeadObservation, ...] = ()
    resources: tuple[ResourceSample, ...] = ()
    dropped: Dropped = Dropped()


class Recorder:
    """Collects events, at most ``limit`` per kind; the rest are counted, not kept."""

    def __init__(self, limit: int = 1_000_000) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self._limit = limit
        self._requests: list[RequestEvent] = []
        self._subscriptions: list[SubscriptionEvent] = []
        self._chaos: list[ChaosEvent] = []
        self._heads: list[HeadObservation] = []
        self._resources: list[ResourceSample] = []
        self._dropped = Dropped()

    def record(self, event: Event) -> bool:
        """Append ``event``; False (and counted as dropped) when its kind is full."""
        match event:
            case RequestEvent():
                return self._keep(self._requests, event, "request")
            case SubscriptionEvent():
                return self._keep(self._subscriptions, event, "subscription")
            case ChaosEvent():
                return self._keep(self._chaos, event, "chaos")
            case HeadObservation():
                return self._keep(self._heads, event, "head")
            case ResourceSample():
                return self._keep(self._resources, event, "resource")

    def _keep(self, kept: list[_E], event: _E, kind: str) -> bool:
        if len(kept) < self._limit:
            kept.append(event)
            return True
        count: int = getattr(self._dropped, kind)
        self._dropped = msgspec.structs.replace(self._dropped, **{kind: count + 1})
        return False

    def dropped(self) -> Dropped:
        return self._dropped

    def recording(self) -> Recording:
        return Recording(
            requests=tuple(self._requests),
            subscriptions=tuple(self._subscriptions),
            chaos=tuple(self._chaos),
            heads=tuple(self._heads),
            resources=tuple(self._resources),
            dropped=self._dropped,
        )


_LINE = msgspec.json.Decoder(Event | Dropped)
_ENCODER = msgspec.json.Encoder()


def encode_jsonl(recording: Recording) -> bytes:
    """One JSON object per line, each tagged with its kind; the drop counts come last."""
    events: list[msgspec.Struct] = [
        *recording.requests,
        *recording.subscriptions,
        *recording.chaos,
        *recording.heads,
        *recording.resources,
        recording.dropped,
    ]
    return b"".join(_ENCODER.encode(event) + b"\n" for event in events)


def decode_jsonl(data: bytes) -> Recording:
    """The inverse of :func:`encode_jsonl`; blank lines are ignored."""
    recorder = Recorder()
    dropped = Dropped()
    for line in data.splitlines():
        if not line.strip():
            continue
        item = _LINE.decode(line)
        if isinstance(item, Dropped):
            dropped = item
        else:
            recorder.record(item)
    return msgspec.structs.replace(recorder.recording(), dropped=dropped)
