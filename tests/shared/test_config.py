"""``[shared]``: defaults, checks, and the password in redis_url kept out of every surface."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from lasso import redact
from lasso.config import ConfigError, parse_settings
from lasso.config.secrets import secret_values
from lasso.daemon import open_gateway
from lasso.shared.store import RedisStore
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.conftest import SETTINGS, FakeFleet
from tests.shared.conftest import start_redis
from tests.support.asgi import asgi_request

PASSWORD = "pw-Zq81xK"


def test_off_by_default_with_sane_defaults() -> None:
    shared = parse_settings(SETTINGS, env={}).shared
    assert (shared.redis_url, shared.timeout_ms, shared.key_prefix) == (None, 50, "lasso:")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('redis_url = "http://h:1"', "shared.redis_url"),
        ('redis_url = "redis://:secret-1@h:1/nodb"', "the path must be a database number"),
        ("timeout_ms = 0", "shared.timeout_ms"),
        ('key_prefix = "a b"', "shared.key_prefix"),
    ],
)
def test_bad_values_are_named_without_the_password(line: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(f"[shared]\n{line}\n" + SETTINGS, env={})
    assert problem in str(caught.value) and "secret-1" not in str(caught.value)


async def test_the_password_is_masked_in_health_logs_and_reprs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = start_redis(tmp_path, password=PASSWORD)
    try:
        url = server.url.replace(PASSWORD, "${REDIS_PASSWORD}")
        text = f'[shared]\nredis_url = "{url}"\n' + SETTINGS
        settings = parse_settings(text, env={"REDIS_PASSWORD": PASSWORD})
        assert PASSWORD in secret_values(settings)  # the redactor masks it wherever it appears
        assert PASSWORD not in repr(settings.shared)
        async with open_gateway(
            settings, rng=random.Random(1), transports=FakeFleet().transport
        ) as gateway:
            assert isinstance(gateway.shared, RedisStore) and gateway.shared.available
            assert PASSWORD not in repr(gateway.shared.address)
            app = LassoASGI(gateway, create_app(gateway))
            health = await asgi_request(app, "GET", "/health")
            assert health.status == 200 and PASSWORD not in health.body.decode()
            assert PASSWORD not in redact.scrub(f"failed: {settings.shared.redis_url}")
    finally:
        server.stop()
    assert "connected to Redis at redis://***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text  # our lines never hold it, even before the log filter
