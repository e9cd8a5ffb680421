"""Label values are bounded: the pure folding rules."""

from __future__ import annotations

from lasso.metrics.labels import (
    MAX_WORDS,
    NONE,
    OTHER,
    WordLabels,
    code_labels,
    method_labels,
)


def test_known_methods_keep_their_names_and_the_rest_fold_into_other() -> None:
    labels = method_labels(extra=["vendor_special"])
    assert labels.get("eth_getLogs", OTHER) == "eth_getLogs"
    assert labels.get("vendor_special", OTHER) == "vendor_special"
    assert labels.get("vendor_other", OTHER) == OTHER
    assert labels.get('a"b\\c\nd', OTHER) == OTHER


def test_codes_fold_into_known_numbers_other_or_none() -> None:
    labels = code_labels()
    assert labels.get(-32601, OTHER) == "-32601"
    assert labels.get(3, OTHER) == "3"
    assert labels.get(-32005, OTHER) == "-32005"
    assert labels.get(-12345, OTHER) == OTHER
    assert labels.get(None, OTHER) == NONE


def test_words_are_bounded_in_shape_and_number() -> None:
    words = WordLabels(("rate",))
    assert words("rate") == "rate"
    assert words("Not A Word") == OTHER
    assert words("x" * 33) == OTHER
    seen = {words(f"w{n}") for n in range(10 * MAX_WORDS)}
    assert OTHER in seen and len(seen) == MAX_WORDS  # rate + 31 new words + other
