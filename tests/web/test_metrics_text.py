"""The Prometheus text format's label escaping."""

from __future__ import annotations

from lasso.web.metrics import _escape


def test_label_values_escape_backslash_quote_and_newline() -> None:
    assert _escape('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert _escape("plain-provider_1.x") == "plain-provider_1.x"
