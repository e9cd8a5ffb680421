"""``server.workers`` and ``lasso serve --workers``: a count of at least 1 or "auto"."""

from __future__ import annotations

import pytest

from lasso.cli import _worker_count
from lasso.cli_grammar import build_parser
from lasso.config import ConfigError, Settings, parse_settings

CHAIN = '[chains.d]\nchain_id = 1\nproviders = [{ id = "a", url = "http://127.0.0.1:9" }]\n'


def settings(workers: str) -> Settings:
    return parse_settings(f"[server]\nworkers = {workers}\n{CHAIN}", env={})


def test_the_default_is_one_process() -> None:
    assert parse_settings(CHAIN, env={}).server.worker_count(8) == 1


def test_a_count_or_auto() -> None:
    assert settings("3").server.worker_count(8) == 3
    assert settings('"auto"').server.workers == "auto"
    assert settings('"auto"').server.worker_count(8) == 8
    assert settings('"auto"').server.worker_count(None) == 1  # cpu_count() unknown


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "server.workers: must be at least 1, got 0"),
        ('"many"', 'server.workers: must be one of "auto"; got "many"'),
        ("true", "server.workers: expected integer or string, got boolean"),
        ("1.5", "server.workers: expected integer or string, got float"),
    ],
)
def test_anything_else_is_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(value)
    assert message in raised.value.render()


def test_the_flag_wins_over_the_key() -> None:
    parse = build_parser().parse_args
    assert _worker_count(settings("3"), parse(["serve"]).workers) == 3
    assert _worker_count(settings("3"), parse(["serve", "--workers", "1"]).workers) == 1
    assert _worker_count(settings("1"), parse(["serve", "--workers", "auto"]).workers) >= 1


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_a_bad_flag_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["serve", "--workers", bad])
    assert raised.value.code == 2
    assert "give a number of at least 1, or 'auto'" in capsys.readouterr().err
