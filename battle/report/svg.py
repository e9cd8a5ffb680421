"""A matplotlib figure as an SVG fragment that can sit inline in an HTML page.

Rendered with the Agg-family SVG backend of a bare :class:`matplotlib.figure.Figure` (no pyplot,
no global figure state). Text stays text (``svg.fonttype = none``, small), mathtext is off (a
``$`` in a provider or method name is drawn as is), and dense point clouds are rasterised into
an inline PNG by the caller (``rasterized=True``) so the size does not grow with the points.

The fragment drops the XML prolog, DOCTYPE and the metadata block, writes path data to 1/100
of a point, and prefixes every ``id``
(and every reference to one) so many plots can share one page without clashing ids.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "lasso-battle",
    "svg.image_inline": True,
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8,
    "axes.titlesize": 9,
    "legend.fontsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
#: Pixels per inch of the rasterised point clouds.
RASTER_DPI = 110

_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^")]+)')
_PATH_DATA = re.compile(r'\bd="([^"]*)"')
_DECIMALS = re.compile(r"(\.\d\d)\d+")


@contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib settings, for drawing and saving."""
    with matplotlib.rc_context(RC):
        yield


def fragment(figure: Figure, prefix: str) -> str:
    """``figure`` as an inline ``<svg>`` element whose ids all start with ``prefix``."""
    buffer = io.StringIO()
    with style():
        figure.savefig(buffer, format="svg", dpi=RASTER_DPI, metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = _METADATA.sub("", text, count=1)
    text = _PATH_DATA.sub(lambda m: f'd="{_compact(m.group(1))}"', text)
    text = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    return _REF.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text).strip()


def _compact(path: str) -> str:
    """Path data on one line, to 1/100 of a point (a third of what matplotlib writes)."""
    return " ".join(_DECIMALS.sub(r"\1", path).split())
