"""``lasso probe``'s exit codes and one-line config errors, and the devnet's prune flags."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lasso.cli import _prune_history, main
from lasso.cli_grammar import build_parser as _parser


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(
        "[chains.devnet]\nchain_id = 31337\naliases = ['local']\n"
        "[[chains.devnet.providers]]\n"
        f'id = "gone"\nurl = "http://127.0.0.1:{closed_port()}"\n'
        "[profiles.test.chains.other]\nchain_id = 5\n"
        "[[profiles.test.chains.other.providers]]\n"
        'id = "x"\nurl = "http://127.0.0.1:9"\n'
    )
    return path


def test_an_unknown_chain_is_one_line_and_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "nochain", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"lasso probe: profile 'default' of {config} has no chain 'nochain' (chains: devnet)\n"
    )


def test_an_unknown_profile_is_one_line_and_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "devnet", "--config", str(config), "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert err == f"lasso probe: {config} has no profile 'nope' (profiles: default, test)\n"


def test_a_chain_of_another_profile_is_not_found_in_the_default(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "other", "--config", str(config)]) == 2
    assert "has no chain 'other'" in capsys.readouterr().err


def test_a_bad_settings_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "devnet", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_no_provider_answering_is_exit_1(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # found by alias, too
    assert main(["probe", "local", "--config", str(config), "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("lasso probe devnet: 1 providers in ")
    assert "gone      -     no answer" in out
    assert "  no answer: UpstreamNetworkError: connect to 127.0.0.1:" in out


def test_write_with_no_answer_emits_only_comments(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "devnet", "--config", str(config), "--write"]) == 1
    captured = capsys.readouterr()
    assert "no answer" in captured.err  # the table
    assert captured.out.startswith("# lasso probe devnet: capabilities measured ")
    assert all(line.startswith("#") for line in captured.out.splitlines() if line)


@pytest.mark.parametrize("command", ["up", "devnet"])
def test_prune_history_prunes_the_last_node_unless_told(command: str) -> None:
    parser = _parser()
    assert _prune_history(parser.parse_args([command])) is None
    assert _prune_history(parser.parse_args([command, "--prune-history", "64"])) == {2: 64}
    args = parser.parse_args(
        [command, "--nodes", "2", "--prune-history", "8", "--pruned-node", "0"]
    )
    assert _prune_history(args) == {0: 8}


def test_a_pruned_node_outside_the_devnet_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["devnet", "--prune-history", "4", "--pruned-node", "3"])
    assert exit_.value.code == 2
    assert "--pruned-node 3: nodes are 0..2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["up", "--prune-history", "0"])
