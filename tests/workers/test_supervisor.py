"""The parent's own small decisions, without processes."""

from __future__ import annotations

import socket
from pathlib import Path

from lasso.workers.supervisor import _Group

CHAIN = '[chains.d]\nchain_id = 1\nproviders = [{ id = "a", url = "http://127.0.0.1:9" }]\n'


def test_a_reload_moves_the_parents_kill_deadline_with_the_workers_grace(tmp_path: Path) -> None:
    config = tmp_path / "lasso.toml"
    with socket.socket() as listener:
        group = _Group(2, str(config), listener, str(tmp_path), None)
        config.write_text(f"[server]\nshutdown_grace_ms = 30_000\n{CHAIN}")
        group.reread_grace()
        assert group.grace_s == 30.0  # a worker now drains 30 s: the parent must wait that long
        config.write_text(f"[server]\nshutdown_grace_ms = -1\n{CHAIN}")
        group.reread_grace()
        assert group.grace_s == 30.0  # a rejected file changes nothing, here as in the workers


def test_a_worker_gets_the_socket_and_its_identity(tmp_path: Path) -> None:
    with socket.socket() as listener:
        group = _Group(3, "/etc/lasso.toml", listener, str(tmp_path), "debug")
        argv, env = group.spawn_args(1, control_fd=7)
        assert env["LASSO_WORKER_LISTEN_FD"] == str(listener.fileno())
    assert env["LASSO_WORKER_CONTROL_FD"] == "7"
    assert (env["LASSO_WORKER_INDEX"], env["LASSO_WORKER_COUNT"]) == ("1", "3")
    assert env["LASSO_WORKER_CONFIG"] == "/etc/lasso.toml"
    assert env["LASSO_WORKER_LOG_LEVEL"] == "debug"
    assert "SIGHUP, signal.SIG_IGN" in argv[-1]  # ignored until the gateway handles it
