"""``eth_getLogs`` beyond provider limits: split a range, build each chunk's params,
merge the chunks' raw results, and learn a provider's limit from its error message.

Theory of operation
-------------------
The shell resolves the client's ``fromBlock``/``toBlock`` to numbers (tags against
the consensus head) and first asks :func:`cap_error` whether the global
``max_logs_block_range`` refuses the request outright (-32602, never sent upstream).
Otherwise, when the span exceeds the chosen provider's limit (configured, or learned
by :func:`learned_range_limit` from an earlier refusal), :func:`split_range` cuts it
into contiguous chunks in chain order, :func:`chunk_params` rewrites only the two
block members of the client's raw filter for each chunk, the shell fetches the
chunks concurrently with a bound (each chunk failing over on its own), and
:func:`merge_chunks` joins the raw JSON arrays, in chunk order, into the array an
unlimited node returns. Every chunk must have succeeded: a missing chunk is a failed
request, never a shorter answer.

What a limit counts. Every limit here (``max_range``, ``global_cap`` and a learned
limit) counts **blocks**: a chunk ``(a, b)`` spans ``b - a + 1`` blocks and never more
than the limit. Providers word it both ways: geth's ``--rpc.rangelimit``
("exceed maximum block range: N") refuses when ``to - from > N``, so it accepts
``N + 1`` blocks, while Alchemy's "up to a 2K block range" and QuickNode's "limited to
a 10,000 range" are counts. Counting blocks satisfies both readings of the same N; on
a geth-like node it costs at most one extra chunk per N blocks.

Pure: no I/O, no clock. Log objects are never decoded: results pass through as bytes.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from lasso.core.block_target import HEAD_TAGS, BlockRef
from lasso.errors import InvalidParams

MAX_MESSAGE_CHARS: Final = 4096
_BLOCK_MEMBERS: Final = ("fromBlock", "toBlock")
_NUMBER: Final = r"(\d[\d,_]*(?:\.\d+)?\s?[km]?)\b"
_HEX_RANGE: Final = re.compile(r"\[\s*\"?(0x[0-9a-f]+)\"?\s*,\s*\"?(0x[0-9a-f]+)\"?\s*\]")
#: Wordings that state a block-range limit, most specific first; group 1 is the limit.
_LIMIT_PATTERNS: Final = tuple(
    re.compile(p)
    for p in (
        rf"up to an? {_NUMBER} ?blocks? range",  # Alchemy (any tier)
        rf"max(?:imum)? block range:? ?{_NUMBER}",  # geth, BSC, publicnode, Pokt
        rf"max(?:imum)?(?: allowed)? range(?: is)?:? ?{_NUMBER}",  # "max range: 2000"
        rf"limited to an? {_NUMBER} ?(?:blocks? )?range",  # QuickNode
        rf"limited to {_NUMBER} ?blocks?",  # NodeReal and others
        rf"ranges? over {_NUMBER} blocks?",  # dRPC
        rf"more than {_NUMBER} blocks?",  # "cannot query more than N blocks"
        rf"block range (?:limit|is limited to|exceeds?|must not exceed)(?: of)?:? ?{_NUMBER}",
        rf"max(?:imum)?(?: allowed)?(?: is)?:? ?{_NUMBER} blocks?",  # "maximum is 1000 blocks"
        rf"exceeds? the limit {_NUMBER}",  # "block span N exceeds the limit M"
    )
)
#: Phrases marking an error as a range or result-size refusal (number or not).
_RANGE_PHRASES: Final = (
    "block range",
    "range too large",
    "range is too large",
    "range too wide",
    "range is too wide",
    "max range",
    "maximum range",
    "ranges over",
    "limited to a",
    "allowed range",
    "log response size exceeded",
    "query returned more than",
    "too many results",
    "block span",
    "blocks distance",
    "block distance",
)


def split_range(from_block: int, to_block: int, max_range: int) -> list[tuple[int, int]]:
    """``[from_block, to_block]`` as inclusive chunks of at most ``max_range`` blocks.

    The chunks are contiguous, in chain order, and cover exactly the range; all but
    the last span exactly ``max_range`` blocks. An inverted range is not split (the
    shell forwards it, so the client gets the node's own error), hence ValueError.
    """
    count = chunk_count(from_block, to_block, max_range)
    return [nth_chunk(from_block, to_block, max_range, index) for index in range(count)]


def chunk_count(from_block: int, to_block: int, max_range: int) -> int:
    """How many chunks :func:`split_range` cuts the range into, without building them
    (a span of millions of blocks is cut lazily: see :func:`nth_chunk`)."""
    if max_range < 1:
        raise ValueError(f"max_range must be at least 1, not {max_range}")
    if from_block < 0 or to_block < from_block:
        raise ValueError(f"not a block range: [{from_block}, {to_block}]")
    return (to_block - from_block) // max_range + 1


def nth_chunk(from_block: int, to_block: int, max_range: int, index: int) -> tuple[int, int]:
    """Chunk ``index`` (0-based) of :func:`split_range`'s answer."""
    start = from_block + index * max_range
    return start, min(start + max_range - 1, to_block)


def chunk_params(filter_params: bytes, chunk: tuple[int, int]) -> bytes:
    """The client's filter with ``fromBlock``/``toBlock`` set to ``chunk``.

    ``filter_params`` is the filter object, or the whole params array ``[filter]``;
    the answer has the same shape. Every other member (address, topics, ...) keeps
    its bytes and its place; the block members keep their place too, and are added
    at the end when absent. A ``blockHash`` filter names one block and is never
    split, hence ValueError; so is anything that is not a filter.
    """
    try:
        if filter_params.lstrip()[:1] == b"[":
            (inner,) = msgspec.json.decode(filter_params, type=tuple[msgspec.Raw])
            return b"[" + chunk_params(bytes(inner), chunk) + b"]"
        members = msgspec.json.decode(filter_params, type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not an eth_getLogs filter: {exc}") from None
    if "blockHash" in members:
        raise ValueError("a blockHash filter names one block and is never split")
    for name, number in zip(_BLOCK_MEMBERS, chunk, strict=True):
        members[name] = msgspec.Raw(b'"%s"' % hex(number).encode())
    return msgspec.json.encode(members)


def merge_chunks(chunks: list[bytes]) -> bytes:
    """The chunks' raw result arrays, in the given (chain) order, as one array.

    Each log keeps its exact bytes; only the separators between logs are
    normalised to the compact form nodes send. A chunk that is not a JSON array
    is a bad upstream answer, hence ValueError, never a silently shorter result.
    """
    logs: list[bytes] = []
    for raw in chunks:
        try:
            logs.extend(bytes(log) for log in msgspec.json.decode(raw, type=list[msgspec.Raw]))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"an eth_getLogs chunk result is not an array: {exc}") from None
    return b"[" + b",".join(logs) + b"]"


def is_range_error(message: str, code: int) -> bool:
    """Whether an upstream error refuses an ``eth_getLogs`` for its range or size.

    Such an answer is the request's shape, not the provider's health: the shell
    splits (narrower, or by the learned limit) rather than counting a failure.
    """
    if code == -32601:  # method not found teaches nothing about ranges
        return False
    text = message[:MAX_MESSAGE_CHARS].lower()
    if any(phrase in text for phrase in _RANGE_PHRASES):
        return True
    return code == -32005 and "limit exceeded" in text  # Infura's generic wording


def learned_range_limit(message: str, code: int) -> int | None:
    """The block-range limit a refusal states, in blocks; None when it states none.

    An explicit limit wins ("exceed maximum block range: 10000", "up to a 2K block
    range", "limited to a 10,000 range", "max range: 2000"). A result-count refusal
    that suggests a range (Infura's "Try with this block range [0x.., 0x..]",
    Alchemy's "this block range should work: [0x.., 0x..]") yields that range's
    width: it holds for this query's log density, so the shell should use it for
    this request rather than keep it as the provider's limit. "query returned more
    than 10000 results" alone counts logs, not blocks, hence None.
    """
    if not is_range_error(message, code):
        return None
    stated = _stated_limit(message)
    return stated if stated is not None else _suggested_width(message)


class Refusal(msgspec.Struct, frozen=True):
    """What one range refusal of a ``span``-block request teaches.

    ``width``: the chunk width to retry that range with (always under ``span``);
    ``provider_limit``: the limit to keep on the provider, or None when the
    refusal only says something about this query (its log density).
    """

    width: int
    provider_limit: int | None


def refusal(message: str, code: int, span: int, *, result_size: bool) -> Refusal | None:
    """How to go on after a provider refused ``span`` blocks; None: nothing narrower.

    A stated limit under ``span`` is the provider's limit. A suggested range (a
    result-count refusal) is used for this request only. Otherwise the span is
    halved (:func:`narrowed_range`), and kept as the provider's limit unless the
    refusal was about the result's size (``result_size``): "more than 10000
    results" depends on the query, "block range is too wide" on the provider. A
    stated limit that is not under ``span`` (the message is boilerplate, or
    counts differently) is not believed, so every refusal narrows: splitting
    always ends.
    """
    if span <= 1:
        return None
    stated = _stated_limit(message)
    if stated is not None and stated < span:
        return Refusal(stated, stated)
    suggested = _suggested_width(message)
    if suggested is not None and suggested < span:
        return Refusal(suggested, None)
    narrowed = narrowed_range(span)
    return Refusal(narrowed, None if result_size else narrowed)


def _stated_limit(message: str) -> int | None:
    text = message[:MAX_MESSAGE_CHARS].lower()
    for pattern in _LIMIT_PATTERNS:
        found = pattern.search(text)
        if found is not None:
            limit = _parse_number(found.group(1))
            if limit is not None:
                return limit
    return None


def _suggested_width(message: str) -> int | None:
    suggested = _HEX_RANGE.search(message[:MAX_MESSAGE_CHARS].lower())
    if suggested is None:
        return None
    low, high = int(suggested.group(1), 16), int(suggested.group(2), 16)
    return high - low + 1 if high >= low else None


def needs_head(low: BlockRef, high: BlockRef) -> bool:
    """Whether the range's width depends on the head (an end at a head tag)."""
    return low != high and any(isinstance(r, str) and r in HEAD_TAGS for r in (low, high))


def window(low: BlockRef, high: BlockRef, head: int | None) -> tuple[int, int] | None:
    """The range as numbers to split: ``latest`` is ``head``, ``earliest`` 0.

    None when an end is ``pending``, ``safe`` or ``finalized`` (the gateway does not
    know which block a node means by them, so such a range is forwarded whole), or
    is ``latest`` with ``head`` unknown.
    """
    ends = [_number(ref, head, ("latest",)) for ref in (low, high)]
    return None if ends[0] is None or ends[1] is None else (ends[0], ends[1])


def cap_window(low: BlockRef, high: BlockRef, head: int | None) -> tuple[int, int] | None:
    """The range as the global cap judges it: every head tag read as ``head``.

    For ``safe``/``finalized`` at the top that over-counts by their distance to
    the head, never under: a client cannot widen a range past the cap with a tag.
    """
    ends = [_number(ref, head, tuple(HEAD_TAGS)) for ref in (low, high)]
    return None if ends[0] is None or ends[1] is None else (ends[0], ends[1])


def _number(ref: BlockRef, head: int | None, head_tags: tuple[str, ...]) -> int | None:
    if isinstance(ref, int):
        return ref
    if ref == "earliest":
        return 0
    return head if ref in head_tags else None


def narrowed_range(span: int) -> int:
    """The next chunk width to try after a refusal that names no limit: half."""
    return max(1, span // 2)


def cap_error(from_block: int, to_block: int, global_cap: int | None) -> InvalidParams | None:
    """The -32602 answer when ``[from_block, to_block]`` spans more blocks than the
    global ``max_logs_block_range`` (None: no cap); None when it is within."""
    if global_cap is None or to_block < from_block:
        return None
    span = to_block - from_block + 1
    if span <= global_cap:
        return None
    return InvalidParams(
        f"eth_getLogs block range too large: {span} blocks requested, "
        f"the maximum is {global_cap} (max_logs_block_range)",
        data={"from_block": hex(from_block), "to_block": hex(to_block), "max": global_cap},
    )


def _parse_number(text: str) -> int | None:
    """A number as providers write it ("10,000", "2K", "2.5k", "1M"); None for zero."""
    text = text.replace(",", "").replace("_", "").replace(" ", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    if scale != 1:
        text = text[:-1]
    try:
        value = int(float(text) * scale) if "." in text else int(text) * scale
    except ValueError:
        return None
    return value if value > 0 else None
