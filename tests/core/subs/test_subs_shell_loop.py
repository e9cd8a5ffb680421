"""The shell's loop, as the package docstring draws it: heads and logs of one chain.

A synchronous stand-in for the shell: it feeds live events, answers fetches from the
chain, passes a heads reorg on to the logs stream and runs the logs backfill. It shows
how little the shell has to decide, and that the pieces fit.
"""

from __future__ import annotations

from typing import Any

from lasso.core.subs import (
    Delivery,
    HeadDecision,
    HeadStream,
    LogStream,
    TooFar,
    parse_subscribe_params,
)
from tests.core.subs.chains import World


class Shell:
    def __init__(self, world: World) -> None:
        self.world = world
        self.heads = HeadStream()
        request = parse_subscribe_params(["logs"])
        self.logs = LogStream(request.log_filter)
        self.sent_heads: list[dict[str, Any]] = []
        self.sent_logs: list[dict[str, Any]] = []

    def on_head(self, payload: dict[str, Any]) -> None:
        self.run(self.heads.offer(payload, raw=b"<bytes>"))

    def on_log(self, payload: dict[str, Any]) -> None:
        self.fan_out_logs(self.logs.offer(payload).deliver)

    def run(self, decision: HeadDecision) -> None:
        while True:
            self.sent_heads.extend(d.payload for d in decision.deliver)
            if decision.orphaned:
                self.fan_out_logs(self.logs.orphan(decision.orphaned, decision.fork_point))
                self.backfill_logs()
            if decision.fetch is None:
                return
            blocks = [self.world.block(n) for n in decision.fetch if self.world.has(n)]
            decision = self.heads.offer_backfill(blocks)

    def backfill_logs(self) -> None:
        missing = self.logs.backfill_range(self.world.tip)
        assert not isinstance(missing, TooFar)
        if missing:
            found = self.world.logs_between(missing)
            self.fan_out_logs(self.logs.accept_backfill(missing, found).deliver)

    def fan_out_logs(self, items: tuple[Delivery, ...]) -> None:
        self.sent_logs.extend(d.payload for d in items)


def test_a_reorg_seen_by_heads_re_sends_logs_removed_and_fetches_the_new_branch() -> None:
    world = World(100, 5)  # blocks 100..104
    shell = Shell(world)
    shell.on_head(world.block(104))
    shell.logs.anchor(104)
    for _ in range(4):  # 105..108, heads and logs live
        block = world.grow()
        shell.on_head(block)
        for lg in world.logs_of(block):
            shell.on_log(lg)
    delivered_before = [lg for lg in shell.sent_logs if int(lg["blockNumber"], 16) >= 107]
    assert delivered_before  # the toy chain has logs in 107..108 to un-deliver
    orphaned, new = world.reorg(107, 3)  # 107, 108 replaced by 107', 108', 109'
    shell.on_head(new[-1])  # only the new tip is announced; upstream logs say nothing

    numbers = [int(h["number"], 16) for h in shell.sent_heads]
    assert numbers == [104, 105, 106, 107, 108, 107, 108, 109]
    assert [h["hash"] for h in shell.sent_heads[-3:]] == [b["hash"] for b in new]
    removed = [lg for lg in shell.sent_logs if lg["removed"]]
    assert removed == [{**lg, "removed": True} for lg in delivered_before]
    live = {(lg["blockHash"], lg["logIndex"]) for lg in shell.sent_logs if not lg["removed"]}
    live -= {(lg["blockHash"], lg["logIndex"]) for lg in removed}
    canonical = world.logs_between(range(105, 110))
    assert live == {(lg["blockHash"], lg["logIndex"]) for lg in canonical}
    assert {b["hash"] for b in orphaned} >= {lg["blockHash"] for lg in removed}
