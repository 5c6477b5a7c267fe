"""PNG charts of the analytics rows. Uses matplotlib's object API with the Agg canvas only: no
pyplot global state, no display needed, safe to call from a CLI or a thread."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from streams.analytics.stats import StageLatency

_PERCENTILES = (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))


def plot_latency_percentiles(rows: Sequence[StageLatency], out_png: Path) -> Path:
    """One panel per model: p50/p95/p99 bars per stage on a log scale (stages span µs to s)."""
    models = sorted({row.model for row in rows})
    figure = Figure(figsize=(10, 3.2 * max(1, len(models))), layout="constrained")
    FigureCanvasAgg(figure)
    if not models:
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, "no requests in this window", ha="center", va="center")
        axes.set_axis_off()
    for index, model in enumerate(models, start=1):
        axes = figure.add_subplot(len(models), 1, index)
        mine = [row for row in rows if row.model == model]
        width = 0.8 / len(_PERCENTILES)
        shown: list[float] = []
        for offset, (field, label) in enumerate(_PERCENTILES):
            # log scale cannot show 0 ms (e.g. an idle queue): clamp to 1 µs
            values = [max(getattr(row, field), 1e-3) for row in mine]
            shown += values
            positions = [i + (offset - 1) * width for i in range(len(mine))]
            bars = axes.bar(positions, values, width=width, label=label)
            axes.bar_label(bars, fmt="%.3g", fontsize=7)
        axes.set_xticks(range(len(mine)), [row.stage for row in mine])
        axes.set_yscale("log")
        axes.set_ylim(bottom=min(shown) / 2)  # bars grow from the axis: keep the smallest visible
        axes.set_ylabel("ms")
        axes.set_title(f"{model}: latency by stage ({mine[0].n if mine else 0} requests)")
        axes.legend(loc="upper left")
        axes.grid(axis="y", alpha=0.3)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=100)
    return out_png
