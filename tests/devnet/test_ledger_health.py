"""The devnet's pure parts: node health transitions and the ledger a restart and a hang need."""

from __future__ import annotations

import pytest

from lasso.devnet.health import NodeHealth, transition
from lasso.devnet.ledger import Ledger

UP, HUNG, DEAD, CATCHING_UP = (
    NodeHealth.UP,
    NodeHealth.HUNG,
    NodeHealth.DEAD,
    NodeHealth.CATCHING_UP,
)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (UP, HUNG),
        (UP, DEAD),
        (UP, CATCHING_UP),
        (HUNG, CATCHING_UP),
        (HUNG, DEAD),
        (DEAD, CATCHING_UP),
        (CATCHING_UP, UP),
        (CATCHING_UP, HUNG),
        (CATCHING_UP, DEAD),
    ],
)
def test_allowed_transitions(current: NodeHealth, new: NodeHealth) -> None:
    assert transition(current, new) is new


@pytest.mark.parametrize(
    ("current", "new"), [(HUNG, UP), (DEAD, UP), (DEAD, HUNG), (UP, UP), (DEAD, DEAD)]
)
def test_a_node_never_skips_catching_up(current: NodeHealth, new: NodeHealth) -> None:
    with pytest.raises(RuntimeError, match="illegal node health transition"):
        transition(current, new)


def ledger_with_two_blocks() -> Ledger:
    ledger = Ledger(2, genesis_timestamp=100, interval_s=1)
    ledger.accept_transaction("0xa", [0, 1])
    ledger.seal()
    for index in (0, 1):
        ledger.node_mined(index, 1)
    ledger.seal()
    ledger.node_mined(0, 2)
    ledger.node_mined(1, 2)
    return ledger


def test_a_restarted_node_replays_from_genesis_every_block_and_transaction() -> None:
    ledger = ledger_with_two_blocks()
    ledger.reset(1)
    assert ledger.heads == [2, 0]
    first = ledger.next_replay(1)
    assert first is not None
    assert (first.number, first.timestamp, first.raw_transactions) == (1, 101, ("0xa",))
    ledger.node_mined(1, 1)
    second = ledger.next_replay(1)
    assert second is not None and (second.number, second.raw_transactions) == (2, ())
    ledger.node_mined(1, 2)
    assert ledger.next_replay(1) is None
    assert ledger.in_sync() == [0, 1]


def test_a_node_that_missed_a_transaction_falls_out_of_sync_and_gets_it_on_replay() -> None:
    ledger = Ledger(2, genesis_timestamp=100, interval_s=1)
    ledger.accept_transaction("0xa", [0])  # node 1 did not answer in time
    assert ledger.in_sync() == [0]
    assert ledger.undelivered_pending(1) == ["0xa"]
    with pytest.raises(RuntimeError, match="only go to nodes in sync"):
        ledger.accept_transaction("0xb", [1])
    ledger.seal()
    ledger.node_mined(0, 1)
    block = ledger.next_replay(1)
    assert block is not None and block.raw_transactions == ("0xa",)


def test_a_paused_node_replays_only_to_the_head_it_had() -> None:
    ledger = ledger_with_two_blocks()
    ledger.pause(1)
    ledger.seal()
    ledger.node_mined(0, 3)
    ledger.reset(1)  # it died while paused
    assert ledger.target(1) == 2
    assert ledger.target(0) == 3
    ledger.unpause(1)
    assert ledger.target(1) == 3
