"""Two tiny contracts as raw EVM bytecode, so the corpus needs no compiler.

``EMITTER`` logs its calldata under one topic and stores the calldata length
in slot 0 (a log for ``eth_getLogs``, a storage slot for ``eth_getStorageAt``
and ``eth_getProof``). ``REVERTER`` reverts: with ``Error("nope")`` when
called with no calldata, with empty revert data otherwise (the two revert
shapes of the execution-apis ``eth_call`` tests).
"""

from __future__ import annotations

# The emitter's one topic: any 32 bytes will do.
EMITTER_TOPIC = "0x" + ("c0ffee" * 11)[:64]


def _hex(*parts: str) -> str:
    return "".join(parts)


_EMITTER_RUNTIME = _hex(
    "366000600037",  # CALLDATASIZE 0 0 CALLDATACOPY: memory[0:size] = calldata
    "7f" + EMITTER_TOPIC[2:],  # PUSH32 topic
    "366000a1",  # CALLDATASIZE 0 LOG1: log(memory[0:size], topic)
    "36600055",  # CALLDATASIZE 0 SSTORE: slot0 = size
    "00",  # STOP
)

# ABI-encoded Error("nope"): selector, offset 0x20, length 4, padded text.
REVERT_REASON = "nope"
_ERROR_NOPE = _hex(
    "08c379a0",
    f"{0x20:064x}",
    f"{len(REVERT_REASON):064x}",
    REVERT_REASON.encode().hex().ljust(64, "0"),
)
_REVERTER_RUNTIME = _hex(
    "3615600957",  # CALLDATASIZE ISZERO PUSH1 9 JUMPI: no calldata -> 9
    "600080fd",  # 0 DUP1 REVERT: empty revert data
    "5b",  # 9: JUMPDEST
    "60646016600039",  # CODECOPY(0, 22, 100): the Error("nope") below
    "60646000fd",  # REVERT(0, 100)
    _ERROR_NOPE,  # 22: revert data, 100 bytes
)


def _deploy(runtime: str) -> str:
    """Init code that returns ``runtime`` (shorter than 256 bytes) as the contract."""
    size = len(runtime) // 2
    assert size < 256, "runtime too long for PUSH1"
    return "0x" + _hex(
        f"60{size:02x}", "600c", "6000", "39", f"60{size:02x}", "6000", "f3", runtime
    )


EMITTER_INIT = _deploy(_EMITTER_RUNTIME)
REVERTER_INIT = _deploy(_REVERTER_RUNTIME)
EMITTER_RUNTIME = "0x" + _EMITTER_RUNTIME
REVERTER_RUNTIME = "0x" + _REVERTER_RUNTIME
