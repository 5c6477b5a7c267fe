"""PNG plots with matplotlib's Agg canvas (no display): throughput vs batch size, latency CDF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from bench.runners import MINILM, SMOLLM


def _errorbar(axes: Axes, xs: list[float], figs: list[dict[str, Any]], label: str,
              **style: Any) -> None:
    ys = [f["median"] for f in figs]
    low = [f["median"] - f["min"] for f in figs]
    high = [f["max"] - f["median"] for f in figs]
    axes.errorbar(xs, ys, yerr=[low, high], capsize=3, label=label, **style)


def throughput_vs_batch(data: dict[str, Any], out: Path) -> Path | None:
    ceiling = data.get("ceiling", {})
    models = [m for m in (MINILM, SMOLLM) if m in ceiling]
    if not models:
        return None
    figure = Figure(figsize=(6 * len(models), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    for index, model in enumerate(models, start=1):
        axes = figure.add_subplot(1, len(models), index)
        curve = ceiling[model]["curve"]
        sizes = sorted(int(b) for b in curve)
        _errorbar(axes, [float(b) for b in sizes], [curve[str(b)]["per_s"] for b in sizes],
                  "model alone (T_off)", marker="o")
        pipeline = data.get("pipeline", {}).get(model)
        if pipeline:
            _errorbar(axes, [float(pipeline["b_star"])], [pipeline["rate"]],
                      f"through Kafka (E={pipeline['efficiency']:.2f})", marker="s",
                      linestyle="none", color="tab:red")
        naive = data.get("naive", {})
        if model == MINILM:
            for kind, color in (("faust_agent", "tab:green"), ("quix_app", "tab:purple")):
                entry = naive.get(kind, {})
                if "rate" in entry:
                    _errorbar(axes, [1.0], [entry["rate"]], entry["label"], marker="^",
                              linestyle="none", color=color)
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [str(b) for b in sizes])
        axes.set_xlabel("batch size B")
        axes.set_ylabel("sequences/s" if model == MINILM else "requests/s")
        axes.set_title(f"{model}: throughput vs batch size (median, min-max)")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out


def latency_cdf(data: dict[str, Any], out: Path) -> Path | None:
    samples = data.get("latency", {}).get("e2e_samples_ms") or {}
    if not any(samples.values()):
        return None
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    capacity = data["latency"].get("capacity", 0.0)
    for key, values in sorted(samples.items()):
        if not values:
            continue
        ordered = sorted(values)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.step(ordered, fractions, where="post",
                  label=f"{float(key):.0%} load ({float(key) * capacity:,.0f} req/s)")
    goal = data["latency"].get("goal")
    if goal:
        axes.axvline(goal["bound_ms"], color="grey", linestyle="--",
                     label=f"p99 bound at 70% ({goal['bound_ms']:.0f} ms)")
    axes.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("end-to-end latency, client send → result received (ms)")
    axes.set_ylabel("fraction of requests")
    axes.set_title("MiniLM through Kafka: latency CDF under Poisson load")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out
