"""The pure core never does I/O: no module under lasso/core imports an I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "lasso" / "core"
FORBIDDEN = {
    "trio",
    "httpx",
    "httpcore",
    "quart",
    "quart_trio",
    "hypercorn",
    "socket",
    "asyncio",
    "trio_websocket",
    "subprocess",
    "lasso.upstream",
    "lasso.web",
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_no_io(path: Path) -> None:
    bad = {n for n in imported_modules(path) if n in FORBIDDEN or n.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports I/O: {sorted(bad)}"


def test_core_has_no_await() -> None:
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.Await | ast.AsyncFunctionDef) for n in ast.walk(tree)), (
            path
        )
