"""The plots of one scenario, as inline SVG: latency histograms per provider and per method,
the latency timeline per provider with every chaos event marked, the ``newHeads`` each client
received, and the gateway's RSS.

Each plot is skipped (with a note saying why) when it has nothing to show, so an empty or
skipped scenario draws nothing and never fails. Point clouds are thinned to
:data:`MAX_POINTS` per panel (:func:`battle.report.series.thin` keeps the outliers) and
rasterised, so a long run costs the same few hundred kilobytes as a short one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

from battle.events import Recording, RequestEvent
from battle.report import series, svg
from battle.results import ScenarioResult

#: Points drawn per scatter panel at most (the rest are counted in the plot's note).
MAX_POINTS = 3000
#: Providers, methods or clients drawn per plot at most (the largest by count).
MAX_GROUPS = 8
_WIDTH_IN = 7.5
_CHAOS_COLOR = "tab:orange"
#: The start of a plot's note when drawing it raised.
DRAW_FAILED = "could not draw this plot"


def _figure(height_in: float, *, left_in: float = 0.75) -> Figure:
    """A figure with fixed margins in inches (cheaper than a layout engine's second draw)."""
    figure = Figure(figsize=(_WIDTH_IN, height_in))
    figure.subplots_adjust(
        left=left_in / _WIDTH_IN,
        right=1 - 0.15 / _WIDTH_IN,
        bottom=0.5 / height_in,
        top=1 - 0.3 / height_in,
        hspace=0.12,
    )
    return figure


def _xy(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


def _latency_tick(value: float, _pos: float | None) -> str:
    return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"


def _latency_axis(axis: Axis, log: bool) -> None:
    """Latency ticks in ms/s, plain text (mathtext is off, so no 10^x labels)."""
    if log:
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(_latency_tick))


@dataclass(frozen=True)
class Plot:
    title: str
    svg: str | None  # None: nothing to draw, ``note`` says why
    note: str = ""


def scenario_plots(result: ScenarioResult, prefix: str) -> list[Plot]:
    """Every plot of ``result``; ids in the SVGs start with ``prefix``."""
    recording = result.recording
    if result.skipped is not None:
        return []
    if recording is None:
        return [Plot("plots", None, "no recording")]
    t0 = series.origin(recording)
    if t0 is None:
        return [Plot("plots", None, "nothing was recorded")]
    drawings: list[tuple[str, Callable[[], Plot]]] = [
        (
            "Latency by provider",
            lambda: _histogram(recording, "Latency by provider", series.provider_of, f"{prefix}hp"),
        ),
        (
            "Latency by method",
            lambda: _histogram(recording, "Latency by method", series.method_of, f"{prefix}hm"),
        ),
        ("Latency over time", lambda: _timeline(recording, t0, f"{prefix}tl")),
        ("newHeads received", lambda: _heads(recording, t0, f"{prefix}hd")),
        ("Gateway RSS", lambda: _rss(recording, t0, f"{prefix}rs")),
    ]
    return [_draw(title, draw) for title, draw in drawings]


def _draw(title: str, draw: Callable[[], Plot]) -> Plot:
    """One plot; a plotting error costs that plot (with a note), never the report at the end
    of a long run."""
    try:
        with svg.style(), warnings.catch_warnings():
            # Text is written as text (svg.fonttype none): the reader's browser picks the font
            # for a name's characters, so DejaVu lacking a glyph is no matter here.
            warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
            return draw()
    except Exception as exc:
        return Plot(title, None, f"{DRAW_FAILED}: {type(exc).__name__}: {exc}")


def _bins(samples: Sequence[float]) -> tuple[list[float], bool]:
    """Histogram edges: logarithmic when every sample is positive and they span a range."""
    low, high = min(samples), max(samples)
    if low > 0 and high / low > 4:
        return np.geomspace(low, high, 40).tolist(), True
    if high <= low:
        low, high = low - 0.001, high + 0.001
    return np.linspace(low, high, 40).tolist(), False


def _histogram(
    recording: Recording, title: str, key: Callable[[RequestEvent], str], prefix: str
) -> Plot:
    answered = [r for r in recording.requests if r.answered_at is not None]
    if not answered:
        return Plot(title, None, "no answered requests")
    groups = series.top_groups(answered, key, MAX_GROUPS)
    samples = [r.answered_at - r.sent_at for r in answered if r.answered_at is not None]
    edges, log = _bins(samples)
    figure = _figure(2.4)
    ax = figure.add_subplot()
    for name, events in groups:
        values = [r.answered_at - r.sent_at for r in events if r.answered_at is not None]
        ax.hist(
            values, bins=edges, histtype="step", linewidth=1.2, label=f"{name} (n={len(values)})"
        )
    if log:
        ax.set_xscale("log")
    _latency_axis(ax.xaxis, log)
    ax.set_xlabel("latency")
    ax.set_ylabel("requests")
    ax.set_title(title)
    ax.legend(loc="upper right", ncols=2)
    shown = sum(len(events) for _, events in groups)
    note = (
        ""
        if shown == len(answered)
        else f"largest {len(groups)} groups, {shown} of {len(answered)} requests"
    )
    return Plot(title, svg.fragment(figure, prefix), note)


def _mark_chaos(
    ax: Axes, recording: Recording, t0: float, t_end: float, target: str | None
) -> None:
    for chaos in recording.chaos:
        stop = chaos.ended_at if chaos.ended_at is not None else t_end
        strong = chaos.target is None or chaos.target == target
        ax.axvspan(
            chaos.started_at - t0,
            stop - t0,
            color=_CHAOS_COLOR,
            alpha=0.25 if strong else 0.08,
            linewidth=0,
        )


def _chaos_lane(ax: Axes, recording: Recording, t0: float, t_end: float) -> None:
    lanes = series.chaos_lanes(recording)
    for chaos in recording.chaos:
        stop = chaos.ended_at if chaos.ended_at is not None else t_end
        lane = lanes.index(series.chaos_name(chaos.kind, chaos.target))
        ax.broken_barh(
            [(chaos.started_at - t0, max(stop - chaos.started_at, 0.0))],
            (lane - 0.4, 0.8),
            color=_CHAOS_COLOR,
        )
    ax.set_yticks(range(len(lanes)), [series.label(lane, 26) for lane in lanes], fontsize=7)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    ax.set_title("Latency over time per provider (chaos events shaded)")
    ax.grid(False, axis="y")


def _latency_limits(latencies: Sequence[float], log: bool) -> tuple[float, float]:
    if not latencies:
        return 0.0, 1.0
    high = max(max(latencies), 0.001)
    if log:
        return min(latencies) / 1.5, high * 2.0  # headroom for the "no answer" marks
    return 0.0, high * 1.15


def _timeline(recording: Recording, t0: float, prefix: str) -> Plot:
    title = "Latency over time per provider"
    if not recording.requests:
        return Plot(title, None, "no requests")
    t_end = series.end(recording) or t0
    groups = series.top_groups(recording.requests, series.provider_of, MAX_GROUPS)
    lanes = len(series.chaos_lanes(recording))
    lane_h = 0.22 * lanes + 0.5 if lanes else 0
    heights = ([lane_h] if lanes else []) + [1.3] * len(groups)
    figure = _figure(sum(heights) + 0.8 + 0.12 * len(heights), left_in=1.6)
    axes = figure.subplots(len(heights), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    if lanes:
        _chaos_lane(axes[0], recording, t0, t_end)
        axes = axes[1:]
    latencies = [r.answered_at - r.sent_at for r in recording.requests if r.answered_at is not None]
    log = bool(latencies) and min(latencies) > 0 and max(latencies) / min(latencies) > 20
    ylim = _latency_limits(latencies, log)
    thinned = 0
    for ax, (name, events) in zip(axes, groups, strict=True):
        line = series.Timeline(events, t0)
        ok = series.thin(line.ok, MAX_POINTS)
        bad = series.thin(line.failed, MAX_POINTS // 4)
        thinned += len(line.ok) - len(ok) + len(line.failed) - len(bad)
        _mark_chaos(ax, recording, t0, t_end, None if name == series.NO_PROVIDER else name)
        if ok:
            ax.scatter(
                *_xy(ok),
                s=3,
                linewidths=0,
                color="tab:blue",
                rasterized=True,
                label="success",
            )
        if bad:
            ax.scatter(
                *_xy(bad),
                s=12,
                marker="x",
                linewidths=0.8,
                color="tab:red",
                rasterized=True,
                label="failure",
            )
        if line.hung:
            hung = line.hung[:: max(1, len(line.hung) // (MAX_POINTS // 4))]
            ax.scatter(
                hung,
                [0.96] * len(hung),
                s=14,
                marker="v",
                color="black",
                transform=ax.get_xaxis_transform(),
                label="no answer",
            )
        if log:
            ax.set_yscale("log")
        ax.set_ylim(*ylim)  # one scale for every provider, so panels compare
        _latency_axis(ax.yaxis, log)
        ax.set_ylabel(name)
        ax.legend(loc="upper left", fontsize=6, markerscale=1.5)
    axes[-1].set_xlabel("seconds since the scenario started")
    axes[-1].set_xlim(0, max(t_end - t0, 1.0))
    notes = [f"{thinned} points thinned out (outliers kept)"] if thinned else []
    providers = len({series.provider_of(r) for r in recording.requests})
    if providers > len(groups):
        notes.append(f"the {len(groups)} busiest of {providers} providers")
    return Plot(title, svg.fragment(figure, prefix), "; ".join(notes))


def _heads(recording: Recording, t0: float, prefix: str) -> Plot:
    title = "newHeads received per client"
    streams = series.HeadStreams(recording, t0)
    if not streams.clients:
        return Plot(title, None, "no newHeads received")
    t_end = series.end(recording) or t0
    figure = _figure(2.4)
    ax = figure.add_subplot()
    _mark_chaos(ax, recording, t0, t_end, None)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    for client, points in streams.clients:
        shown = series.thin(points, MAX_POINTS)
        ax.plot(
            *_xy(shown),
            marker=".",
            markersize=2.5,
            linewidth=0.6,
            drawstyle="steps-post",
            label=client,
            rasterized=len(shown) > 500,
        )
    for points, marker, color, name in (
        (streams.gaps, "x", "tab:red", "gap"),
        (streams.duplicates, "D", "tab:purple", "duplicate"),
    ):
        if points:
            shown = series.thin(points, MAX_POINTS // 4)
            ax.scatter(*_xy(shown), marker=marker, s=22, color=color, label=name)
    ax.set_xlabel("seconds since the scenario started")
    ax.set_ylabel("block number")
    ax.set_xlim(0, max(t_end - t0, 1.0))
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=6)
    return Plot(title, svg.fragment(figure, prefix))


def _rss(recording: Recording, t0: float, prefix: str) -> Plot:
    title = "Gateway RSS"
    if not recording.resources:
        return Plot(title, None, "no RSS samples")
    t_end = series.end(recording) or t0
    points = series.thin(
        sorted((r.at - t0, r.rss_bytes / 2**20) for r in recording.resources), MAX_POINTS
    )
    figure = _figure(1.8)
    ax = figure.add_subplot()
    _mark_chaos(ax, recording, t0, t_end, None)
    ax.plot(*_xy(points), linewidth=1.0, color="tab:green")
    ax.set_xlabel("seconds since the scenario started")
    ax.set_ylabel("RSS (MiB)")
    ax.set_xlim(0, max(t_end - t0, 1.0))
    ax.set_ylim(0, max(max(r.rss_bytes for r in recording.resources) / 2**20 * 1.15, 1.0))
    ax.set_title(f"{title} (peak {max(r.rss_bytes for r in recording.resources) / 2**20:.1f} MiB)")
    return Plot(title, svg.fragment(figure, prefix))
