"""What Lasso knows about each JSON-RPC method.

For every method: whether the gateway answers it itself, refuses it, or
forwards it; its total deadline; and whether it is *replay-safe*, that is
whether sending it to a second provider after a failure can do no harm.
Unknown methods (vendor extensions) are forwarded but treated as unsafe to
replay, so they are dispatched at most once.

Node-administration and state-changing families (``anvil_*``, ``hardhat_*``,
``evm_*``, ``admin_*``, ``miner_*``, ``personal_*``, ``debug_setHead``, and
anvil's ``eth_sendUnsignedTransaction``, which sends from any address unsigned) are
*denied*: answered -32601 without reaching a provider, unless the operator's
``[server] allow_methods`` names them. Forwarded, one of them would change a
single provider behind the gateway (``anvil_setBalance`` forks it from the
others) or make the node dial an address the client chose (``anvil_reset``
with a fork URL). The answer is geth's for a namespace it does not expose, so
a client sees what a node with those APIs switched off would say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum

import msgspec

from lasso.errors import MethodNotSupported


class Disposition(Enum):
    FORWARD = "forward"
    LOCAL_CHAIN_ID = "local_chain_id"
    BLOCKED = "blocked"
    DENIED = "denied"
    WS_ONLY = "ws_only"


BLOCKED = frozenset(
    {"eth_sendTransaction", "eth_sign", "personal_sign", "eth_signTransaction", "eth_accounts"}
)
WS_ONLY = frozenset({"eth_subscribe", "eth_unsubscribe"})
DENIED_PREFIXES = ("anvil_", "hardhat_", "evm_", "admin_", "miner_", "personal_")
DENIED_METHODS = frozenset({"debug_setHead", "eth_sendUnsignedTransaction"})


class Allowlist(msgspec.Struct, frozen=True):
    """``[server] allow_methods``: exact names, and prefixes given as ``"name*"``."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, patterns: Iterable[str]) -> Allowlist:
        patterns = tuple(patterns)
        return cls(
            exact=frozenset(p for p in patterns if not p.endswith("*")),
            prefixes=tuple(p[:-1] for p in patterns if p.endswith("*")),
        )

    def allows(self, method: str) -> bool:
        return method in self.exact or method.startswith(self.prefixes)


NOTHING_ALLOWED = Allowlist()


#: The refused names in lower case: a node that matches method names without regard to
#: case must not be reachable through ``Anvil_reset`` or ``eth_SendTransaction``.
_BLOCKED_LOWER = frozenset(m.lower() for m in BLOCKED)
_DENIED_LOWER = frozenset(m.lower() for m in DENIED_METHODS)


def is_denied(method: str, allowed: Allowlist = NOTHING_ALLOWED) -> bool:
    """A node-admin or state-changing method the operator has not allowed (in any case)."""
    lower = method.lower()
    if lower in _DENIED_LOWER or lower.startswith(DENIED_PREFIXES):
        return not allowed.allows(method)
    return False


# Total deadline per method, in milliseconds: the whole request, every
# attempt included. Anything not listed gets DEFAULT_DEADLINE_MS.
DEFAULT_DEADLINE_MS = 10_000
_DEADLINE_GROUPS: dict[int, tuple[str, ...]] = {
    1_000: ("eth_blockNumber", "eth_chainId", "net_version", "web3_clientVersion", "net_listening"),
    2_000: (
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee",
        "eth_feeHistory",
        "eth_syncing",
        "eth_getBalance",
        "eth_getTransactionCount",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getUncleCountByBlockHash",
        "eth_getUncleCountByBlockNumber",
        "eth_getUncleByBlockHashAndIndex",
        "eth_getUncleByBlockNumberAndIndex",
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_uninstallFilter",
        "eth_getFilterChanges",
        "web3_sha3",
        "net_peerCount",
        "eth_protocolVersion",
    ),
    3_000: ("eth_getTransactionReceipt", "eth_getBlockReceipts"),
    5_000: (
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_getLogs",
        "eth_getFilterLogs",
        "eth_sendRawTransaction",
        "eth_simulateV1",
    ),
    10_000: ("eth_getProof",),
    30_000: ("debug_traceTransaction", "debug_traceCall", "trace_transaction", "trace_call"),
    45_000: (
        "debug_traceBlock",
        "debug_traceBlockByNumber",
        "debug_traceBlockByHash",
        "trace_block",
        "trace_replayBlockTransactions",
    ),
}
DEADLINES_MS: dict[str, int] = {m: ms for ms, group in _DEADLINE_GROUPS.items() for m in group}

# Methods that never change state and give the same answer from any
# up-to-date provider, so a failed attempt may be retried elsewhere.
# (eth_sendRawTransaction is not one, but a signed transaction is idempotent:
# lasso.transactions resends it itself.)
_NOT_REPLAYABLE = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_uninstallFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
    }
)
_REPLAYABLE_PREFIXES = ("debug_", "trace_", "txpool_")
REPLAYABLE = (frozenset(DEADLINES_MS) - _NOT_REPLAYABLE) | {
    "eth_mining",
    "eth_hashrate",
    "eth_coinbase",
    "eth_getHeaderByNumber",
    "eth_getHeaderByHash",
}


#: Params that pass no argument (absent, null or an empty array). ``{}`` is not one:
#: a node answers it with -32602, and so must Lasso.
_NO_ARGUMENTS = frozenset({b"", b"null", b"[]"})


def disposition(method: str, params: bytes, allowed: Allowlist = NOTHING_ALLOWED) -> Disposition:
    """How the gateway handles ``method`` before any routing happens."""
    if method == "eth_chainId" and params in _NO_ARGUMENTS:
        return Disposition.LOCAL_CHAIN_ID
    if method.lower() in _BLOCKED_LOWER:
        return Disposition.BLOCKED
    if is_denied(method, allowed):
        return Disposition.DENIED
    if method in WS_ONLY:
        return Disposition.WS_ONLY
    return Disposition.FORWARD


def refusal(method: str, disp: Disposition, request_path: str) -> MethodNotSupported:
    """The error for a method the gateway will not forward (over HTTP, for WS_ONLY)."""
    if disp is Disposition.DENIED:
        # geth's words for a method of a namespace it does not expose
        return MethodNotSupported(f"the method {method} does not exist/is not available")
    if disp is Disposition.WS_ONLY:
        return MethodNotSupported(
            f"Method {method} is not supported over HTTP. "
            "Use a WebSocket connection for subscriptions.",
            data={"websocket_url": "/ws" + request_path},
        )
    return MethodNotSupported(f"Method {method} is not supported by proxy")


def is_replay_safe(method: str) -> bool:
    if method in DENIED_METHODS:  # when allowed, they change the node
        return False
    return method in REPLAYABLE or method.startswith(_REPLAYABLE_PREFIXES)


def deadline_ms(method: str, overrides: Mapping[str, int] | None = None) -> int:
    if overrides and method in overrides:
        return overrides[method]
    return DEADLINES_MS.get(method, DEFAULT_DEADLINE_MS)
