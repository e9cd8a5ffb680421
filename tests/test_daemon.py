"""The composition root: hypercorn's settings come from [server]."""

from __future__ import annotations

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
