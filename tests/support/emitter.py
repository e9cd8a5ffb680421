"""A log-emitting contract on the devnet: every call to it logs one ``TOPIC`` log."""

from __future__ import annotations

from lasso.devnet import DEV_ACCOUNTS, Devnet

TOPIC = "0x" + "ab" * 32
# Runtime code: LOG1(offset 0, size 0, TOPIC); STOP. The init code copies it out and returns it.
RUNTIME = "7f" + "ab" * 32 + "6000" + "6000" + "a1" + "00"
INIT = "6027600c60003960276000f3" + RUNTIME


async def send_signed(devnet: Devnet, tx: dict[str, str]) -> str:
    raw = await devnet.request(1, "eth_signTransaction", [tx])
    return await devnet.send_raw_transaction(raw)


async def deploy_emitter(devnet: Devnet) -> str:
    tx_hash = await send_signed(
        devnet, {"from": DEV_ACCOUNTS[0], "data": "0x" + INIT, "gas": hex(200_000)}
    )
    await devnet.mine()
    receipt = await devnet.request(1, "eth_getTransactionReceipt", [tx_hash])
    return str(receipt["contractAddress"])


async def emit(devnet: Devnet, contract: str, count: int = 1) -> None:
    """``count`` logs in one new block."""
    for _ in range(count):
        await send_signed(
            devnet, {"from": DEV_ACCOUNTS[0], "to": contract, "data": "0x", "gas": hex(100_000)}
        )
    await devnet.mine()
