"""Chaos tooling that ships with Lasso: real network faults between Lasso and a node.

This is product code, not test support. The battle harness (``make battle``,
``battle/``) runs chaos scenarios against real providers, by default the local
anvil devnet (:mod:`lasso.devnet`), and stands on these pieces, as do the
integration tests:

    faults      the fault vocabulary (:class:`Fault`): HTML 500, reset, hang, 429, ...
    faultproxy  an HTTP proxy in front of a real node that injects those faults
    logslimit   an eth_getLogs limit the proxy can enforce, with real providers'
                messages
    tcpcut      a TCP relay that can be cut (RST) or blackholed

They run on a plain install (``pip install .``): real sockets on loopback, trio
and msgspec only, never pytest or Hypothesis. The in-memory doubles that only the
test suite uses (fake nodes on memory streams, the in-process ASGI driver) live in
``tests/support/``; production never needs them.
"""

from lasso.chaos.faultproxy import FaultProxy, open_fault_proxy
from lasso.chaos.faults import Fault
from lasso.chaos.logslimit import LogsLimit, logs_limit
from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay

__all__ = [
    "Fault",
    "FaultProxy",
    "LogsLimit",
    "TcpRelay",
    "logs_limit",
    "open_fault_proxy",
    "open_tcp_relay",
]
