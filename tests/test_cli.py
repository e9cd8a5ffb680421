"""The command line: check-config exit codes and problem listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from lasso.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_the_shipped_settings_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(REPO / "settings.toml")]) == 0
    assert "ok (1 profiles, 3 chains)" in capsys.readouterr().out


def test_every_problem_is_listed_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[server]\nport = 0\n\n"
        "[chains.devnet]\nchain_id = 31337\n"
        '[[chains.devnet.providers]]\nid = "a"\nurll = "http://x"\n'
    )
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "server.port: must be between 1 and 65535, got 0" in err
    assert "chains.devnet.providers[0].urll: unknown field" in err
    assert "chains.devnet.providers[0].url: missing required field" in err


def test_an_unreadable_file_is_a_problem_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_a_busy_devnet_port_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["devnet", "--nodes", "1", "--port-base", str(port)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("lasso: the devnet could not start: port ")
    assert "Traceback" not in err
