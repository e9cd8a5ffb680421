"""The production install (``make install-prod``, docs/service.md): ``pip install .`` brings
Lasso and its runtime dependencies, never a dev, test or battle tool, and no anvil."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Tools that belong to development, tests or the battle harness, never to a server.
DEV_TOOLS = frozenset(
    {
        "pytest",
        "pytest-trio",
        "hypothesis",
        "ruff",
        "mypy",
        "playwright",
        "web3",
        "rich",
        "matplotlib",
        "html5lib",
    }
)


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalized (PEP 503)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def test_the_base_dependencies_hold_no_dev_tool() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    assert base, "the runtime needs trio, hypercorn..."
    assert base & DEV_TOOLS == set()
    assert "trio" in base and "hypercorn" in base
    # The dev tools are all in extras, which `pip install .` leaves out.
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    assert {"pytest", "hypothesis", "ruff", "mypy", "playwright", "web3"} <= extras


def test_the_make_target_installs_lasso_plainly() -> None:
    recipe = subprocess.run(
        ["make", "-n", "-C", str(REPO), "install-prod", "PROD_VENV=/opt/lasso/.venv"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "-m venv /opt/lasso/.venv" in recipe
    assert "/opt/lasso/.venv/bin/python -m pip install --quiet .\n" in recipe
    assert "-e" not in recipe.split()  # not editable: the venv holds its own copy
    assert "[dev]" not in recipe and "npm" not in recipe  # no extras, no anvil


@pytest.mark.slow
def test_make_install_prod_in_a_fresh_venv(tmp_path: Path) -> None:
    """The real thing: a copy of the source, ``make install-prod`` into a new venv (about
    25 s here, dependencies from the configured package index), then the venv holds
    ``lasso`` and no dev tool, and ``lasso check-config`` runs from it."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("Makefile", "pyproject.toml", "README.md", "settings.toml"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "lasso", source / "lasso", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-C", str(source), "install-prod", f"PROD_VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^lasso \d+\.\d+\.\d+", done.stdout, re.MULTILINE), done.stdout
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    installed = {_name(line.split("==")[0]) for line in listed.splitlines() if "==" in line}
    assert "lasso" in installed
    assert installed & DEV_TOOLS == set()
    # Not editable: the installed package is the venv's own copy.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import lasso.daemon; print(lasso.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv)), where
    check = subprocess.run(
        [str(venv / "bin" / "lasso"), "check-config", str(source / "settings.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr
