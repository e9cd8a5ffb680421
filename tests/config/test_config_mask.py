"""mask_url hides credentials but keeps providers recognisable."""

from __future__ import annotations

import pytest

from lasso.config import mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        # Nothing secret: unchanged.
        ("https://ethereum-rpc.publicnode.com", "https://ethereum-rpc.publicnode.com"),
        ("https://rpc.ankr.com/eth", "https://rpc.ankr.com/eth"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("ws://127.0.0.1:8545/", "ws://127.0.0.1:8545/"),
        ("https://1rpc.io/eth", "https://1rpc.io/eth"),
        ("https://h/ethereum-mainnet/v1", "https://h/ethereum-mainnet/v1"),
        # Keys in the path.
        (
            "https://eth-mainnet.g.alchemy.com/v2/AbCdEf123456GhIjKl7890MnOp",
            "https://eth-mainnet.g.alchemy.com/v2/***",
        ),
        (
            "wss://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOpQrStUvWx",
            "wss://eth-mainnet.g.alchemy.com/v2/***",
        ),
        (
            "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef",
            "https://mainnet.infura.io/v3/***",
        ),
        (
            "https://name.quiknode.pro/0123456789abcdef0123456789abcdef01234567/",
            "https://name.quiknode.pro/***/",
        ),
        (
            "https://eth-mainnet.blastapi.io/1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
            "https://eth-mainnet.blastapi.io/***",
        ),
        ("https://h/rpc/ab12cd34ef56", "https://h/rpc/***"),  # short but key-like
        # Userinfo.
        ("https://user:hunter2@node.example/rpc", "https://***:***@node.example/rpc"),
        ("https://0123456789abcdef:@node.example", "https://***:***@node.example"),
        ("https://KEY123@node.example", "https://***@node.example"),
        # Query values and fragments.
        (
            "https://lb.drpc.org/ogrpc?network=ethereum&dkey=SeCrEt",
            "https://lb.drpc.org/ogrpc?network=***&dkey=***",
        ),
        ("https://h/rpc?apikey=abc", "https://h/rpc?apikey=***"),
        ("https://h/rpc?token", "https://h/rpc?***"),
        ("https://h/rpc#key=abc", "https://h/rpc#***"),
        # Not a URL at all.
        ("http://[::1", "***"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_masking_is_idempotent() -> None:
    url = "https://u:p@h/v2/AbCdEf123456GhIjKl7890MnOp?k=v#f"
    assert mask_url(mask_url(url)) == mask_url(url) == "https://***:***@h/v2/***?k=***#***"
