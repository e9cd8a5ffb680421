"""Properties of the consistency rules: the head a client sees never goes down, and an empty
answer is held only from a provider not known to have the block."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lasso.core.block_target import block_target
from lasso.core.consistency import HeadFloor, needed_block, quantity

heights = st.integers(min_value=0, max_value=2**40)
maybe = st.none() | heights
step = st.tuples(st.sampled_from(["number", "latest", "delivered"]), heights)


@given(st.lists(step, max_size=60))
def test_the_head_a_client_sees_never_goes_down_and_is_never_invented(
    steps: list[tuple[str, int]],
) -> None:
    floor = HeadFloor()
    seen: set[int] = set()
    shown = -1
    for kind, number in steps:
        seen.add(number)
        if kind == "delivered":
            floor.delivered({"number": hex(number)})
            out = number
        elif kind == "number":
            out = quantity(floor.block_number(b'"%s"' % hex(number).encode())) or 0
        else:
            wanted = floor.below(number)
            out = number if wanted is None else wanted  # the shell fetches block `wanted`
        assert out >= shown or kind == "delivered"
        assert out in seen  # a head some answer or delivery really had
        shown = max(shown, out)
        assert floor.value == max(seen)


@given(
    number=heights,
    height=maybe,
    head=maybe,
    floor=maybe,
    highest=maybe,
    method=st.sampled_from(["eth_getBlockByNumber", "eth_getBlockReceipts", "eth_getLogs"]),
)
def test_only_a_provider_not_known_at_the_block_is_retried(
    number: int,
    height: int | None,
    head: int | None,
    floor: int | None,
    highest: int | None,
    method: str,
) -> None:
    params = (
        b'[{"fromBlock":"0x0","toBlock":"%s"}]' % hex(number).encode()
        if method == "eth_getLogs"
        else b'["%s"]' % hex(number).encode()
    )
    need = needed_block(
        method,
        block_target(method, params),
        height=height,
        consensus_head=head,
        floor=floor,
        highest_known=highest,
    )
    if need is not None:
        assert need == number
        # a provider at the block answers as it is, unless it says "no such block" for a
        # block at or below the consensus head or the floor (that block exists)
        exists = head is not None and need <= max(head, floor or 0)
        assert height is None or height < need or (exists and method != "eth_getLogs")
        assert need <= max(x for x in (head, floor, highest) if x is not None)  # known mined
