"""Log traffic on the devnet: one call to the emitter contract per block, so ``logs`` subscribers
have logs to receive (the emitter logs its calldata under ``ChainData.topic``).

Each transaction is signed by a node that is up, in sync, not paused and not forked (its
pending nonce is the chain's), from an account nothing else in the harness sends from, with
a counter as calldata so every log differs. A failure (the signing node was just killed, a
lockstep deadline) skips that block; the loop never waits longer than ``duration_s``.
"""

from __future__ import annotations

import logging

import trio

from battle.chaindata import ChainData
from lasso.devnet import DEV_ACCOUNTS, Devnet, DevnetError, NodeHealth

log = logging.getLogger(__name__)

__all__ = ["LOG_SENDER", "make_log_traffic"]

#: Seeding uses accounts 0-6 and Devnet.fork account 9.
LOG_SENDER = DEV_ACCOUNTS[8]
_CALL_TIMEOUT_S = 5.0


async def make_log_traffic(devnet: Devnet, data: ChainData, duration_s: float) -> int:
    """Send one emitter call per block for ``duration_s``; return how many were accepted."""
    sent = 0
    with trio.move_on_after(duration_s):
        while True:
            height = devnet.statistics().blocks_mined
            try:
                with trio.fail_after(_CALL_TIMEOUT_S):
                    await _send_one(devnet, data, sent)
                sent += 1
            except (DevnetError, trio.TooSlowError, OSError) as exc:
                log.info("log traffic skipped a block: %s", exc)
            await devnet.wait_for_block(height + 1)
    return sent


async def _send_one(devnet: Devnet, data: ChainData, counter: int) -> None:
    stats = devnet.statistics()
    signers = [
        i
        for i, health in enumerate(stats.health)
        if health == NodeHealth.UP.value
        and i not in stats.paused
        and i not in stats.forked
        and stats.heads[i] == stats.blocks_mined
    ]
    if not signers:
        raise DevnetError("no node is up and in sync to sign log traffic")
    call = {
        "from": LOG_SENDER,
        "to": data.emitter,
        "data": "0x" + counter.to_bytes(32).hex(),
        "gas": hex(100_000),
    }
    raw = str(await devnet.request(signers[0], "eth_signTransaction", [call]))
    await devnet.send_raw_transaction(raw)
