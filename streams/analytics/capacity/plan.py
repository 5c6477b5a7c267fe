"""The plan: fits of a measured curve, the predicted table, and how many workers a target needs.

N is capped by the partition count: a consumer group uses at most one consumer per partition,
so beyond it workers idle. With --workers-per-gpu K the answer is also given in GPUs (⌈N/K⌉).
A mix of models (bench source): every worker serves every model, its time split by the mix, so
X_mix(N) = 1 / Σ share_m / X_m(N), each X_m fitted on that model's own measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.analytics.capacity.laws import (
    Fit,
    fit_amdahl,
    fit_gustafson,
    fit_usl,
    karp_flatt,
    usl_peak,
)
from streams.analytics.capacity.sources import Measured

_SEARCH_LIMIT = 4096  # the most workers an answer considers, partitions aside
Rate = Callable[[int], float]


@dataclass(frozen=True, slots=True)
class Scaling:
    measured: Measured
    fits: tuple[Fit, Fit, Fit]  # Amdahl, Gustafson, USL

    @classmethod
    def of(cls, measured: Measured) -> Scaling:
        points = measured.points
        return cls(measured, (fit_amdahl(points), fit_gustafson(points), fit_usl(points)))

    @property
    def usl(self) -> Fit:
        return self.fits[2]


def mixed(parts: Sequence[tuple[float, Rate]]) -> Rate:
    """The throughput of a mix from each model's throughput (time shared by the mix)."""
    def rate(n: int) -> float:
        return 1.0 / sum(share / part(n) for share, part in parts)
    return rate


def workers_for(target: float, rate: Rate, limit: int = _SEARCH_LIMIT) -> int | None:
    """The fewest workers whose predicted rate reaches `target`; None if none up to `limit`."""
    return next((n for n in range(1, limit + 1) if rate(n) >= target), None)


def best_within(rate: Rate, partitions: int) -> tuple[int, float]:
    """The worker count (at most `partitions`) with the highest predicted rate, and that rate."""
    return max(((n, rate(n)) for n in range(1, partitions + 1)), key=lambda nr: nr[1])


def answer(target: float, rate: Rate, partitions: int, workers_per_gpu: int | None,
           peak: float = math.inf) -> str:
    """One sentence: how many workers (GPUs) for `target` requests/s, or why not."""
    needed = workers_for(target, rate)
    best_n, best_rate = best_within(rate, partitions)
    if needed is None:
        where = f" (N* = {peak:.1f})" if math.isfinite(peak) else ""
        return (f"target {target:g} req/s is out of reach: the prediction peaks at "
                f"{best_rate:,.1f} req/s with {best_n} worker(s){where}; more workers would "
                "only add contention. Make a worker faster (larger batches, a faster device).")
    gpus = "" if workers_per_gpu is None else (
        f" = {math.ceil(needed / workers_per_gpu)} GPU(s) at {workers_per_gpu} worker(s) per GPU")
    if needed > partitions:
        return (f"target {target:g} req/s needs N = {needed} workers{gpus}, more than the "
                f"{partitions} partitions let consume (one consumer per partition): raise the "
                f"partitions to >= {needed}; with {partitions} at most {best_rate:,.1f} req/s "
                f"(N = {best_n})")
    return (f"target {target:g} req/s: N = {needed} worker(s){gpus}, predicted "
            f"{rate(needed):,.1f} req/s")


def _fit_line(fit: Fit) -> str:
    shape = f"σ {fit.sigma:.3f}"
    if fit.law == "USL":
        shape += f"  κ {fit.kappa:.2e}" if fit.free == 3 else "  κ 0 (κ needs 3 worker counts)"
    if fit.exact:
        quality = (f"exact: {fit.free} parameters through {len(fit.residuals)} points, "
                   "therefore not validated")
    else:
        rms = math.sqrt(sum(r * r for r in fit.residuals) / len(fit.residuals))
        r2 = "n/a" if fit.r2 is None else f"{fit.r2:.4f}"
        quality = (f"R² {r2}, residuals {' '.join(f'{r:+.1f}' for r in fit.residuals)} req/s "
                   f"(rms {rms:.1f} = {rms / fit.lam:.1%} of λ)")
    return f"  {fit.law:<9}  λ {fit.lam:9,.1f}/s  {shape:<38} {quality}"


def scaling_lines(scaling: Scaling) -> list[str]:
    points = scaling.measured.points
    base = next((p.rate for p in points if p.workers == 1), None)
    measured = []
    for p in points:
        text = f"N={p.workers} {p.rate:,.1f} req/s"
        if base and p.workers > 1:
            speedup = p.rate / base
            text += f" (x{speedup:.2f}, Karp–Flatt e = {karp_flatt(speedup, p.workers):.3f})"
        measured.append(text)
    lines = ["measured: " + " | ".join(measured),
             "fits (least squares on requests/s):", *(_fit_line(f) for f in scaling.fits)]
    if base and any(p.rate / base > p.workers for p in points if p.workers > 1):
        lines.append("  note: a speed-up above N (Karp–Flatt e < 0): the one-worker run was not "
                     "limited by its worker (or is noise); σ is clamped at 0")
    if base and any(p.rate < base for p in points if p.workers > 1):
        lines.append("  note: more workers served less (retrograde): contention or coherency "
                     "costs more than a worker adds; σ is clamped at 1")
    if len(points) < 3:
        lines.append("  note: 2 worker counts leave a 2-parameter law no point to spare: nothing "
                     "validates it; measure a third count (e.g. 4) before trusting N > 2")
    return lines


def table_lines(scalings: Sequence[tuple[float, Scaling]], counts: Sequence[int],
                partitions: int) -> list[str]:
    """Predicted req/s per law (at the mix) for each N, capped by the partitions."""
    laws = [mixed([(share, s.fits[i].rate) for share, s in scalings]) for i in range(3)]
    single = len(scalings) == 1
    measured = {p.workers: p.rate for p in scalings[0][1].measured.points} if single else {}
    lines = [f"predicted req/s (N capped at {partitions} partitions):",
             f"{'N':>8}  {'Amdahl':>9}  {'Gustafson':>9}  {'USL':>9}  measured"]
    for n in counts:
        eff = min(n, partitions)
        label = f"{n}" if eff == n else f"{n}->{eff}"
        seen = f"{measured[eff]:,.1f}" if eff in measured else "-"
        lines.append(f"{label:>8}  " + "  ".join(f"{law(eff):>9,.1f}" for law in laws)
                     + f"  {seen}")
    return lines


def plan_text(scalings: Sequence[tuple[float, Scaling]], counts: Sequence[int], partitions: int,
              target_rps: float | None, workers_per_gpu: int | None) -> str:
    lines: list[str] = []
    for share, scaling in scalings:
        mix = ", ".join(f"{m} {v:.0%}" for m, v in scaling.measured.mix.items()) or "unknown"
        head = f"[{share:.0%} of the target mix] " if len(scalings) > 1 else ""
        lines += [f"{head}source: {scaling.measured.source}; measured at mix: {mix}",
                  *scaling_lines(scaling), ""]
    lines += table_lines(scalings, counts, partitions)
    if target_rps is not None:
        usl = mixed([(share, s.usl.rate) for share, s in scalings])
        peaks = [usl_peak(s.usl.sigma, s.usl.kappa) for _, s in scalings]
        lines += ["", "by the USL (Amdahl when only 2 worker counts were measured): "
                  + answer(target_rps, usl, partitions, workers_per_gpu, min(peaks))]
    return "\n".join(lines)
