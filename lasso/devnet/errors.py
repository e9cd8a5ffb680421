"""Errors of the devnet, a development tool; they never reach a gateway client."""

from __future__ import annotations

from typing import Any


class DevnetError(Exception):
    """The devnet could not do what was asked (start, mine, stay in lockstep)."""


class DevnetRpcError(DevnetError):
    """A node answered a control call with a JSON-RPC error object."""

    def __init__(self, node: str, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{node}: {method} failed with {code}: {message}")
        self.node = node
        self.method = method
        self.code = code
        self.message = message
        self.data = data
