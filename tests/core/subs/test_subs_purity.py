"""lasso.core.subs is pure core: no I/O imports, no awaits, no clocks, no randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_architecture import FORBIDDEN
from tests.test_architecture import imported_modules as imported

SUBS = Path(__file__).resolve().parents[3] / "lasso" / "core" / "subs"
MODULES = sorted(SUBS.glob("*.py"))
# Time and randomness are arguments in the core; these streams need neither.
ALSO_FORBIDDEN = {"time", "random", "datetime"}


def test_the_package_is_found() -> None:
    assert {p.name for p in MODULES} >= {
        "filters.py",
        "heads.py",
        "logs.py",
        "shape.py",
        "resume.py",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_no_clock_no_randomness(path: Path) -> None:
    bad = {
        n for n in imported(path) if n.split(".")[0] in FORBIDDEN | ALSO_FORBIDDEN or n in FORBIDDEN
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_nothing_awaits(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert not any(isinstance(n, ast.Await | ast.AsyncFunctionDef) for n in ast.walk(tree))
