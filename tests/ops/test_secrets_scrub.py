"""The shell half of secret masking (lasso.redact): the log filter, error answers, routing
metadata, /health and operator events, in-process on fake upstreams (fast; the real
``lasso serve`` proof is tests/ops/test_secrets_leak.py)."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from lasso import redact
from lasso.config import ProviderConfig, Settings, parse_settings
from lasso.daemon import open_gateway
from lasso.errors import NoProviderAvailable, UpstreamRpcError
from lasso.opsevents import OpsEvents, ProviderDown, now_stamps
from lasso.upstream.http import HttpResponse, HttpStatistics
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from tests.support.asgi import asgi_request

PATH_KEY = "SECRETPATHTOKEN123"
QUERY_KEY = "SECRETQUERYTOKEN456"
HEADER_KEY = "SECRETHEADERTOKEN789"
WS_KEY = "SECRETWSPATHTOKEN42"
PLANTED = (PATH_KEY, QUERY_KEY, HEADER_KEY, WS_KEY)

SETTINGS = f"""
[chains.devnet]
chain_id = 31337
head_poll_ms = 0
providers = [
  {{ id = "keyed", url = "http://keyed.invalid/v3/{PATH_KEY}?apikey={QUERY_KEY}", ws_url = "ws://keyed.invalid/ws/{WS_KEY}", headers = {{ Authorization = "Bearer {HEADER_KEY}" }} }},
]
"""


@pytest.fixture
def settings() -> Settings:
    return parse_settings(SETTINGS, env={})


def assert_clean(text: str) -> None:
    assert [s for s in PLANTED if s in text] == [], text


# --- the log filter ----------------------------------------------------------------------------


class JsonLines(logging.Formatter):
    """A JSON-lines formatter as a log setup may use: message, traceback and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"msg": record.getMessage(), "exc": record.exc_text, "url": record.__dict__["url"]}
        return json.dumps(line)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    logger = logging.getLogger("tests.secrets")
    logger.propagate = False
    text, lines = io.StringIO(), io.StringIO()
    plain = logging.StreamHandler(text)
    plain.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    structured = logging.StreamHandler(lines)
    structured.setFormatter(JsonLines())
    logger.handlers = [plain, structured]
    logger.setLevel(logging.DEBUG)
    yield logger, text, lines
    logger.handlers = []


def test_the_log_filter_masks_message_args_traceback_and_extras(
    settings: Settings, captured: tuple[logging.Logger, io.StringIO, io.StringIO]
) -> None:
    logger, text, lines = captured
    redact.install(settings, logger)
    redact.install(settings, logger)  # idempotent: one filter per handler
    assert all(len(h.filters) == 1 for h in logger.handlers)
    try:
        raise OSError(f"POST /v3/{PATH_KEY} refused (Authorization: Bearer {HEADER_KEY})")
    except OSError:
        logger.exception(
            "provider %s failed at %s: 100%% sure",
            "keyed",
            f"http://keyed.invalid/v3/{PATH_KEY}?apikey={QUERY_KEY}",
            extra={"url": f"ws://keyed.invalid/ws/{WS_KEY}"},
        )
    assert_clean(text.getvalue())
    assert_clean(lines.getvalue())
    assert "provider keyed failed at http://keyed.invalid/v3/***?apikey=***: 100% sure" in (
        text.getvalue()
    )
    assert "OSError: POST /v3/*** refused (Authorization: ***)" in text.getvalue()
    record = json.loads(lines.getvalue().splitlines()[0])
    assert record["url"] == "ws://keyed.invalid/ws/***"
    assert "Traceback" in record["exc"] and "***" in record["exc"]


def test_a_reload_adds_secrets_and_keeps_the_old_ones(
    settings: Settings, captured: tuple[logging.Logger, io.StringIO, io.StringIO]
) -> None:
    logger, text, _ = captured
    redact.install(settings, logger)
    reloaded = parse_settings(SETTINGS.replace(HEADER_KEY, "ROTATEDHEADERKEY000"), env={})
    redact.update(reloaded)
    logger.warning("old %s new %s", HEADER_KEY, "ROTATEDHEADERKEY000")
    assert text.getvalue().strip() == "WARNING tests.secrets: old *** new ***"


def test_an_uncaught_traceback_is_printed_scrubbed(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    redact.update(settings)
    try:
        raise ConnectionError(f"ws://keyed.invalid/ws/{WS_KEY} reset (Bearer {HEADER_KEY})")
    except ConnectionError as exc:
        redact.scrubbing_excepthook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ConnectionError: ws://keyed.invalid/ws/*** reset (***)" in err
    assert_clean(err)


# --- error answers and routing metadata -------------------------------------------------------


class EchoingProvider:
    """An HTTP transport whose provider answers 404 quoting the request line and key."""

    def __init__(self, provider: ProviderConfig) -> None:
        self.page = f"Bad key {provider.headers['Authorization']} for POST /v3/{PATH_KEY}".encode()

    async def post(self, body: bytes, *, replay_safe: bool = True) -> HttpResponse:
        return HttpResponse(404, self.page, None)

    async def reap_idle(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None

    def statistics(self) -> HttpStatistics:
        return HttpStatistics(0, 0, 0, 0, 0)


async def test_error_bodies_and_routing_metadata_hold_no_secret(settings: Settings) -> None:
    """Before: the 404 page (with the path key and the bearer token) was the error
    message and each attempt's message, in the body and in ``lasso_meta``."""

    def transports(chain: str, provider: ProviderConfig) -> EchoingProvider:
        return EchoingProvider(provider)

    async with open_gateway(settings, rng=random.Random(1), transports=transports) as gateway:
        app = LassoASGI(gateway, create_app(gateway))
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
        answer = await asgi_request(app, "POST", "/rpc/devnet", body, query="include_meta=body")
        health = await asgi_request(app, "GET", "/health")
    assert_clean(answer.body.decode())
    assert_clean(health.body.decode())
    error = answer.json()["error"]
    assert error["message"].endswith("Bad key *** for POST /v3/***")
    assert answer.json()["lasso_meta"]["attempts"][0]["message"].endswith("/v3/***")
    provider = health.json()["chains"]["devnet"]["providers"][0]
    assert provider["url"] == "http://keyed.invalid/v3/***?apikey=***"
    assert provider["ws_url"] == "ws://keyed.invalid/ws/***"


def test_scrub_error_cleans_message_and_data_and_a_quoting_node_error(
    settings: Settings,
) -> None:
    redact.update(settings)
    attempts = [{"provider": "keyed", "message": f"HTTP 404: /v3/{PATH_KEY}"}]
    exc = redact.scrub_error(
        NoProviderAvailable(f"All failed: Bearer {HEADER_KEY}", data={"attempts": attempts})
    )
    assert exc.message == "All failed: ***"
    assert exc.data == {"attempts": [{"provider": "keyed", "message": "HTTP 404: /v3/***"}]}
    node = b'{"code":-32000,"message":"execution reverted"}'
    passed = UpstreamRpcError(
        "x", provider_id="keyed", rpc_code=-32000, raw_error=node, category="x"
    )
    assert redact.scrub_error(passed).raw_error is node  # byte for byte: nothing to hide
    quoting = UpstreamRpcError(
        "x",
        provider_id="keyed",
        rpc_code=-32000,
        raw_error=f'{{"code":-32000,"message":"bad key {QUERY_KEY}"}}'.encode(),
        category="x",
    )
    assert redact.scrub_error(quoting).raw_error == b'{"code":-32000,"message":"bad key ***"}'


# --- operator events ---------------------------------------------------------------------------


async def test_operator_event_reasons_are_scrubbed_on_publish(settings: Settings) -> None:
    redact.update(settings)
    events = OpsEvents()
    seen: list[Any] = []
    events.listen(seen.append)
    reason = f"connect to http://keyed.invalid/v3/{PATH_KEY}?apikey={QUERY_KEY} failed"
    events.publish(ProviderDown(**now_stamps(), provider="keyed", transport="http", reason=reason))
    published = seen[0]
    assert published.reason == "connect to http://keyed.invalid/v3/***?apikey=*** failed"
    assert events.recent[0] is published
    assert_clean(msgspec.json.encode(published).decode())
