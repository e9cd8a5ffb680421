"""Server text frames built by hand are the bytes wsproto writes for the same message."""

from __future__ import annotations

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from lasso.core.wsframe import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1_798, 65_535, 65_536, 200_000])
def test_a_text_frame_is_wsprotos_frame(size: int) -> None:
    text = "x" * size  # the length forms' edges, in bytes
    assert text_frame(text.encode()) == Connection(ConnectionType.SERVER).send(TextMessage(text))


def test_a_non_ascii_frame_counts_bytes() -> None:
    text = '{"extraData":"é€😀"}' * 10
    assert text_frame(text.encode()) == Connection(ConnectionType.SERVER).send(TextMessage(text))
