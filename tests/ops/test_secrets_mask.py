"""The pure half of secret masking: URLs by shape, known values in free text, and the
values a configuration holds (lasso.core.mask, lasso.config.secrets)."""

from __future__ import annotations

import base64

import msgspec
import pytest

from lasso.config import parse_settings
from lasso.config.secrets import secret_values
from lasso.core.mask import MASK, Redactor, looks_like_key, mask_url, mask_urls, url_secrets


@pytest.mark.parametrize(
    "segment",
    ["v3", "ws", "eth", "C", "rpc", "ext", "bc", "ethereum-mainnet", "ogrpc", "polygon-amoy", "v1"],
)
def test_generic_path_segments_stay_readable(segment: str) -> None:
    assert not looks_like_key(segment)


@pytest.mark.parametrize(
    "segment",
    [
        "SECRETWSPATHTOKEN42",  # 19 characters, upper case: the old rule kept it
        "AbCdEf123456",
        "ab12cd34ef56",
        "0123456789abcdef0123456789abcdef",
        "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
        "k3y~With=base64+",
        "abcdefghijklmnopqrstuvwxyz",  # long, even if all letters
    ],
)
def test_key_like_path_segments_are_masked(segment: str) -> None:
    assert looks_like_key(segment)
    assert mask_url(f"wss://h.example/ws/{segment}") == "wss://h.example/ws/***"


def test_mask_url_keeps_scheme_host_port_and_generic_path() -> None:
    url = "https://u:p@rpc.example:8443/v3/SECRETPATHTOKEN123/eth?apikey=SECRETQUERY&x=1#frag"
    assert mask_url(url) == "https://***:***@rpc.example:8443/v3/***/eth?apikey=***&x=***#***"
    assert mask_url(mask_url(url)) == mask_url(url)


def test_mask_urls_masks_every_url_in_free_text() -> None:
    text = (
        "connect to https://h/v2/AbCdEf0123456789XyZ?key=abc failed; "
        "then 'wss://user:pw@h2:8546/ws/SECRETWSPATHTOKEN42' too"
    )
    assert mask_urls(text) == (
        "connect to https://h/v2/***?key=*** failed; then 'wss://***:***@h2:8546/ws/***' too"
    )
    assert mask_urls("no url here") == "no url here"


def test_url_secrets_are_the_credentials_not_the_generic_parts() -> None:
    url = "https://user:p%40ss@h/v3/SECRETPATHTOKEN123?network=mainnet&apikey=Q&dkey=sEcReT"
    found = set(url_secrets(url))
    assert {"user:p%40ss", "user", "p%40ss", "p@ss", "SECRETPATHTOKEN123", "Q", "sEcReT"} <= found
    assert "mainnet" not in found and "v3" not in found and "h" not in found


def test_redactor_replaces_known_values_longest_first_and_masks_urls() -> None:
    redactor = Redactor(["SECRET123", "Bearer SECRET123", "ab", MASK])
    text = "Bad key: Bearer SECRET123 at http://h/x?apikey=SECRET123 (ab)"
    assert redactor.scrub(text) == "Bad key: *** at http://h/x?apikey=*** (ab)"
    assert redactor.secrets == {"SECRET123", "Bearer SECRET123"}  # too short ones ignored


def test_redactor_leaves_node_bytes_alone_unless_they_quote_a_secret() -> None:
    redactor = Redactor(["SECRET123"])
    clean = b'{"code":-32000,"message":"execution reverted: http://x/y?z=1"}'
    assert redactor.scrub_known(clean) is clean
    quoted = b'{"code":-32000,"message":"invalid key SECRET123"}'
    assert redactor.scrub_known(quoted) == b'{"code":-32000,"message":"invalid key ***"}'
    assert Redactor().scrub_known(quoted) == quoted


def test_a_redactor_keeps_what_it_knew() -> None:
    first = Redactor(["OLDSECRET1"])
    both = first.with_secrets(["NEWSECRET2"])
    assert both.scrub("OLDSECRET1 NEWSECRET2") == "*** ***"


SETTINGS = """
[chains.devnet]
chain_id = 31337
providers = [
  { id = "a", url = "http://u:PASSWORD42@127.0.0.1:1/v3/SECRETPATHTOKEN123?network=mainnet&apikey=QUERYSECRET", ws_url = "ws://127.0.0.1:1/ws/SECRETWSPATHTOKEN42", headers = { Authorization = "Bearer HEADERSECRET789", X-Api = "XAPISECRET" } },
  { id = "b", url = "https://rpc.example/eth", api_key = "APIKEYSECRET" },
]
"""


def test_secret_values_finds_every_credential_in_a_config() -> None:
    values = secret_values(parse_settings(SETTINGS, env={}))
    basic = base64.b64encode(b"u:PASSWORD42").decode()
    expected = {
        "PASSWORD42",
        "SECRETPATHTOKEN123",
        "QUERYSECRET",
        "SECRETWSPATHTOKEN42",
        "Bearer HEADERSECRET789",
        "HEADERSECRET789",
        "XAPISECRET",
        "APIKEYSECRET",
        basic,
        f"Basic {basic}",
    }
    assert expected <= values
    assert not {"mainnet", "rpc.example", "eth", "v3", "devnet", "a", "b"} & values


class _ClientKey(msgspec.Struct, frozen=True):
    key: str
    rps: int = 10


class _Auth(msgspec.Struct, frozen=True):
    """A stand-in for a later ``[auth]`` section, of whatever shape: read generically."""

    api_keys: tuple[str, ...] = ()
    per_key: dict[str, _ClientKey] = {}
    header: str = "X-Lasso-Api-Key"


class _Root(msgspec.Struct, frozen=True):
    auth: _Auth


def test_secret_values_reads_client_keys_by_their_field_names() -> None:
    root = _Root(
        _Auth(api_keys=("CLIENTKEY1", "sha256:abcdef"), per_key={"k2": _ClientKey("CK2X")})
    )
    values = secret_values(root)
    assert {"CLIENTKEY1", "sha256:abcdef", "k2", "CK2X"} <= values
    assert "X-Lasso-Api-Key" not in values
