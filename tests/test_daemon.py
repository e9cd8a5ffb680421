"""The composition root: hypercorn's settings come from [server]."""

from __future__ import annotations

import pytest

from lasso.config import parse_settings
from lasso.daemon import GC_GEN0_THRESHOLD, hypercorn_config


def test_hypercorn_settings_follow_the_server_table() -> None:
    settings = parse_settings(
        "[server]\nshutdown_grace_ms = 2500\nws_ping_interval_ms = 20000\nws_max_frame_bytes = 1000\n"
        '[chains.c]\nchain_id = 1\nproviders = [{ id = "a", url = "http://a.invalid" }]\n',
        env={},
    )
    config = hypercorn_config("127.0.0.1", 4100, settings.server)
    assert config.bind == ["127.0.0.1:4100"]
    assert config.graceful_timeout == 2.5
    assert config.websocket_ping_interval == 20.0
    # Room above our own frame limit, so an oversized frame gets our JSON-RPC error.
    assert config.websocket_max_message_size == 2000
    assert config.keep_alive_max_requests >= 1_000_000
    assert config.accesslog is None
    assert GC_GEN0_THRESHOLD > 700


def test_front_limits_follow_the_server_table() -> None:
    from lasso.daemon import front_limits

    settings = parse_settings(
        "[server]\nmax_connections = 7\nheader_timeout_ms = 1500\nws_send_timeout_ms = 250\n"
        "shutdown_grace_ms = 3000\n"
        '[chains.c]\nchain_id = 1\nproviders = [{ id = "a", url = "http://a.invalid" }]\n',
        env={},
    )
    limits = front_limits(settings.server)
    assert (limits.max_connections, limits.header_timeout_s) == (7, 1.5)
    assert (limits.send_timeout_s, limits.grace_s) == (0.25, 3.0)


def test_the_open_file_limit_is_raised_to_the_hard_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import resource

    from lasso.daemon import raise_open_file_limit

    limits = {"now": (1024, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda _: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: limits.update(now=value))
    assert raise_open_file_limit(1000) == 4096
    assert limits["now"] == (4096, 4096)
    assert caplog.records == []
    # Still too low for the configured connections: one warning, and we go on.
    assert raise_open_file_limit(10_000) == 4096
    assert "below server.max_connections (10000)" in caplog.records[0].getMessage()


def test_connection_caps_follow_the_server_table_and_a_reload() -> None:
    from hypercorn.config import Config

    from lasso.daemon import _retune_front, front_limits

    chain = '[chains.c]\nchain_id = 1\nproviders = [{ id = "a", url = "http://a.invalid" }]\n'
    settings = parse_settings(chain, env={})
    limits = front_limits(settings.server)
    assert (limits.max_connections_per_ip, limits.max_ws_connections) == (1_000, 5_000)
    reloaded = parse_settings(
        f"[server]\nmax_connections_per_ip = 0\nmax_ws_connections = 3\n{chain}", env={}
    )
    _retune_front(limits, Config(), reloaded)
    assert (limits.max_connections_per_ip, limits.max_ws_connections) == (0, 3)
