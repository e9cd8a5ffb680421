"""New blocks and reorgs from head reports (lasso.core.reorg_ledger)."""

from __future__ import annotations

from lasso.core.reorg_ledger import Reorg, ReorgLedger


def h(tag: str, number: int) -> str:
    return "0x" + f"{tag}{number:x}".rjust(64, "0")


def test_a_chain_growing_is_new_blocks_only() -> None:
    ledger = ReorgLedger()
    for n in range(1, 10):
        assert ledger.observe(n, h("a", n), h("a", n - 1)) is None
    assert (ledger.new_blocks, ledger.reorgs) == (9, 0)
    assert ledger.observe(9, h("a", 9), h("a", 8)) is None  # a second provider, same block
    assert ledger.new_blocks == 9


def test_a_replaced_tip_is_a_reorg_naming_the_replaced_hashes() -> None:
    ledger = ReorgLedger()
    for n in range(1, 10):
        ledger.observe(n, h("a", n), h("a", n - 1))
    reorg = ledger.observe(8, h("b", 8), h("a", 7))  # blocks 8 and 9 replaced
    assert reorg == Reorg(fork=8, replaced=(h("a", 8), h("a", 9)), confirmed=True)
    assert reorg.lowest(safe_depth=64) == 8
    assert ledger.reorgs == 1
    # the new branch grows: its parents agree, nothing more is replaced
    assert ledger.observe(9, h("b", 9), h("b", 8)) is None


def test_a_report_whose_parent_differs_names_the_fork_below_it() -> None:
    ledger = ReorgLedger()
    for n in range(1, 6):
        ledger.observe(n, h("a", n), h("a", n - 1))
    reorg = ledger.observe(6, h("b", 6), h("b", 5))
    assert reorg == Reorg(fork=5, replaced=(h("a", 5),), confirmed=False)
    assert reorg.lowest(safe_depth=3) == 2  # how deep is unknown: down to the safe depth


def test_a_lagging_report_is_no_reorg() -> None:
    ledger = ReorgLedger()
    for n in range(1, 6):
        ledger.observe(n, h("a", n), h("a", n - 1))
    assert ledger.observe(3, h("a", 3), h("a", 2)) is None


def test_the_window_is_bounded() -> None:
    ledger = ReorgLedger(window=4)
    for n in range(1, 100):
        ledger.observe(n, h("a", n), h("a", n - 1))
    assert ledger.observe(10, h("b", 10), None) is None  # long forgotten
