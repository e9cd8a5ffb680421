"""The rings: the pure core never does I/O (no module under lasso/core imports an I/O
library, reads the clock, or reaches into the shell, and none of it is async); the
shell never imports the web front end, which only the composition root wires in;
and nothing Lasso ships imports a test tool.

``check_tree`` is the core's checker; it runs on the real ``lasso/core`` and, to
prove it can fail, on planted violations (source strings and a synthetic module
tree). The ring checks below run on the real package and on planted imports too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lasso"
CORE = PACKAGE / "core"

#: Top-level modules a core module may never import (nor anything under them).
FORBIDDEN_ROOTS = frozenset(
    {
        "trio",
        "trio_websocket",
        "httpx",
        "httpcore",
        "h11",
        "h2",
        "wsproto",
        "quart",
        "quart_trio",
        "hypercorn",
        "socket",
        "ssl",
        "select",
        "selectors",
        "asyncio",
        "subprocess",
        "threading",
        "multiprocessing",
        "signal",
        "os",
        "time",  # time is an argument: the shell passes trio.current_time()
        "importlib",  # a dynamic import would hide any of the above
    }
)
#: Submodules forbidden although their package is fine.
FORBIDDEN_MODULES = frozenset({"urllib.request", "http.client", "http.server"})
#: The only parts of lasso the core may import: itself and the error tree.
LASSO_ALLOWED = ("lasso.core", "lasso.errors")
#: Kept for tests/core/subs/test_subs_purity.py, which adds its own names.
FORBIDDEN = FORBIDDEN_ROOTS | {"lasso.upstream", "lasso.web", "lasso.dispatch"}
_DYNAMIC_IMPORTS = frozenset({"__import__", "import_module"})


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden(name: str) -> bool:
    """Whether a core module may not import the module ``name``."""
    root = name.split(".")[0]
    if root == "lasso":
        return name != "lasso" and not any(_under(name, p) for p in LASSO_ALLOWED)
    return root in FORBIDDEN_ROOTS or any(_under(name, m) for m in FORBIDDEN_MODULES)


def module_imports(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module the source of ``module`` imports, relative imports resolved.

    ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule), and
    ``__import__("x")`` / ``importlib.import_module("x")`` with a literal yield ``x``.
    """
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and _called_name(node.func) in _DYNAMIC_IMPORTS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    names.discard("")
    return names


def imported_modules(path: Path) -> set[str]:
    """``module_imports`` of a file of this repository, named by its path."""
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    module = ".".join(parts[:-1] if is_package else parts)
    return module_imports(path.read_text(), module, is_package=is_package)


def _resolve(target: str | None, level: int, package: str) -> str:
    if level == 0:
        return target or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{target}" if target else base


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """What is wrong with one core module's source: forbidden imports, async code."""
    found = [
        f"imports {name}"
        for name in sorted(module_imports(source, module, is_package=is_package))
        if forbidden(name)
    ]
    async_nodes = (ast.Await, ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith)
    if any(isinstance(n, async_nodes) for n in ast.walk(ast.parse(source))):
        found.append("has async code")
    return found


def check_tree(package_dir: Path, package: str) -> dict[str, list[str]]:
    """``violations`` for every module of a package directory, keyed by module name."""
    problems: dict[str, list[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        found = violations(path.read_text(), module, is_package=is_package)
        if found:
            problems[module] = found
    return problems


# -- the real core --------------------------------------------------------------------


def test_the_core_is_pure() -> None:
    modules = list(CORE.rglob("*.py"))
    assert len(modules) > 10  # the walk really found the core
    assert check_tree(CORE, "lasso.core") == {}


# -- the checker catches what it guards (planted violations) --------------------------


@pytest.mark.parametrize(
    ("source", "module", "bad"),
    [
        ("import trio", "lasso.core.x", "trio"),
        ("import trio.testing as tt", "lasso.core.x", "trio.testing"),
        ("from trio import sleep", "lasso.core.x", "trio"),
        ("import time", "lasso.core.x", "time"),
        ("from time import monotonic", "lasso.core.x", "time"),
        ("import socket, json", "lasso.core.x", "socket"),
        ("from lasso.upstream.http import HttpTransport", "lasso.core.x", "lasso.upstream.http"),
        ("import lasso.upstream.http", "lasso.core.x", "lasso.upstream.http"),
        ("from lasso import dispatch", "lasso.core.x", "lasso.dispatch"),
        ("from lasso.dispatch import dispatch", "lasso.core.x", "lasso.dispatch"),
        ("from lasso.web.app import create_app", "lasso.core.x", "lasso.web.app"),
        ("from lasso.config import Settings", "lasso.core.x", "lasso.config"),
        ("from ..upstream import http", "lasso.core.x", "lasso.upstream.http"),
        ("from ... import dispatch", "lasso.core.subs", "lasso.dispatch"),
        ("from ...dispatch import Outcome", "lasso.core.subs.x", "lasso.dispatch"),
        ("from urllib.request import urlopen", "lasso.core.x", "urllib.request"),
        ("import http.client", "lasso.core.x", "http.client"),
        ("def f():\n    import asyncio\n", "lasso.core.x", "asyncio"),
        ("if False:\n    import httpx\n", "lasso.core.x", "httpx"),
        ("__import__('trio')", "lasso.core.x", "trio"),
        ("import importlib\nimportlib.import_module('time')", "lasso.core.x", "time"),
    ],
)
def test_a_planted_forbidden_import_is_caught(source: str, module: str, bad: str) -> None:
    is_package = source.startswith("from ... import")  # lasso/core/subs/__init__.py
    assert f"imports {bad}" in violations(source, module, is_package=is_package)


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import msgspec",
        "import random\nfrom collections.abc import Mapping",
        "from lasso.errors import MethodNotSupported",
        "from lasso.core import strategies",
        "from lasso.core.subs.items import Block",
        "from .items import Block",
        "from email.utils import parsedate_to_datetime",
        "import urllib.parse",
        "def f(now: float) -> float:\n    return now + 1\n",
    ],
)
def test_what_the_core_may_import_passes(source: str) -> None:
    assert violations(source, "lasso.core.subs.x") == []


@pytest.mark.parametrize(
    "source",
    [
        "async def f():\n    pass\n",
        "async def f(x):\n    await x\n",
        "async def f(x):\n    async with x:\n        pass\n",
    ],
)
def test_planted_async_code_is_caught(source: str) -> None:
    assert "has async code" in violations(source, "lasso.core.x")


def test_a_planted_module_tree_fails_the_same_check(tmp_path: Path) -> None:
    core = tmp_path / "lasso" / "core"
    (core / "subs").mkdir(parents=True)
    (core / "__init__.py").write_text("")
    (core / "clean.py").write_text("import random\nfrom lasso.errors import LassoError\n")
    (core / "evil.py").write_text(
        "from lasso.upstream.http import HttpTransport\nimport time\nfrom lasso import dispatch\n"
    )
    (core / "subs" / "__init__.py").write_text("from ... import dispatch\n")
    (core / "subs" / "sneaky.py").write_text("from ...upstream import ws\n")
    assert check_tree(core, "lasso.core") == {
        "lasso.core.evil": [
            "imports lasso.dispatch",
            "imports lasso.upstream.http",
            "imports lasso.upstream.http.HttpTransport",
            "imports time",
        ],
        "lasso.core.subs": ["imports lasso.dispatch"],
        "lasso.core.subs.sneaky": ["imports lasso.upstream", "imports lasso.upstream.ws"],
    }


# -- the outer rings --------------------------------------------------------------------

#: The web front end (the dashboard is part of it), and the composition root that wires it
#: to the shell.
WEB_ALLOWED = ("lasso.web", "lasso.dashboard", "lasso.daemon", "lasso.cli", "lasso.__main__")
#: Test tools: the installed package (``pip install .``) must import without them.
TEST_TOOLS = frozenset({"pytest", "_pytest", "pytest_trio", "hypothesis", "tests"})


def module_name(path: Path) -> str:
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def ring_violations(module: str, imports: set[str]) -> list[str]:
    """What a module outside the core imports across a ring it may not cross."""
    found = []
    if not any(_under(module, allowed) for allowed in WEB_ALLOWED):
        found += [f"imports {n}" for n in sorted(imports) if _under(n, "lasso.web")]
    found += [f"imports {n}" for n in sorted(imports) if n.split(".")[0] in TEST_TOOLS]
    return found


def test_the_rings_hold_across_the_package() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50
    problems = {}
    for path in modules:
        found = ring_violations(module_name(path), imported_modules(path))
        if found:
            problems[module_name(path)] = found
    assert problems == {}


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("lasso.gateway", "from lasso.web.meta import encode_header", "lasso.web.meta"),
        ("lasso.subscriptions.hub", "from lasso.web import health", "lasso.web.health"),
        ("lasso.upstream.ws.connection", "import lasso.web.health", "lasso.web.health"),
        ("lasso.chaos.faultproxy", "import pytest", "pytest"),
        ("lasso.devnet.network", "from hypothesis import given", "hypothesis"),
        ("lasso.web.app", "from tests.support.fakes import FakeNode", "tests.support.fakes"),
    ],
)
def test_a_planted_ring_crossing_is_caught(module: str, source: str, bad: str) -> None:
    imports = module_imports(source, module)
    assert f"imports {bad}" in ring_violations(module, imports)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("lasso.daemon", "from lasso.web.app import create_app"),
        ("lasso.web.app", "from lasso.web.health import health"),
        ("lasso.web.meta", "from lasso.core.jsonrpc import encode_json"),
        ("lasso.gateway", "from lasso.callmeta import CallMeta"),
        ("lasso.chaos.faultproxy", "import trio.testing"),
    ],
)
def test_what_the_rings_allow_passes(module: str, source: str) -> None:
    assert ring_violations(module, module_imports(source, module)) == []
