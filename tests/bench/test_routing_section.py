"""The routing section's cells build and time a real decision (it broke silently once when
``ChainRuntime.plan`` gained a required argument: ``make bench`` printed FAILED)."""

from __future__ import annotations

import pytest

from bench import routing
from lasso.core.router import Strategy


def test_each_cell_times_a_real_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "REPEATS", 1)
    monkeypatch.setattr(routing, "REPEAT_S", 0.001)
    rows = routing._cells(3, Strategy.FASTEST)
    assert [row["what"] for row in rows] == ["plan", "decision", "decision+state"]
    assert all(row["us_per_call"] > 0 for row in rows)
