"""An absolute-form request target is served as its path; its authority is never used."""

from __future__ import annotations

from typing import Any

import pytest

from lasso.web.server import origin_form


def scope(target: bytes) -> dict[str, Any]:
    return {"type": "http", "raw_path": target, "path": target.decode(), "query_string": b""}


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://127.0.0.1:9/rpc/devnet", "/rpc/devnet"),
        (b"HTTPS://evil.example:443/rpc/provider/n0/devnet", "/rpc/provider/n0/devnet"),
        (b"ws://evil.example/ws/rpc/devnet", "/ws/rpc/devnet"),
        (b"http://evil.example", "/"),
        (b"http://evil.example/rpc/a%2Fb", "/rpc/a/b"),
    ],
)
def test_absolute_form_becomes_its_path(target: bytes, path: str) -> None:
    reduced = origin_form(scope(target))
    assert reduced["path"] == path
    assert b"evil" not in reduced["raw_path"] and b"127.0.0.1" not in reduced["raw_path"]


@pytest.mark.parametrize("target", [b"*", b"127.0.0.1:9", b"evil.example:443", b"ftp://x/rpc/a"])
def test_other_forms_are_left_to_the_app(target: bytes) -> None:
    assert origin_form(scope(target)) == scope(target)
