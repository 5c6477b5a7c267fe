"""Scalability laws as throughput curves X(N) = λ · S(N), and their least-squares fits.

Capacity is a throughput question: λ is one worker's requests/s, S(N) the speed-up of N:
- Amdahl, a serial fraction σ that no worker count shortens: S = N / (1 + σ(N − 1)).
- Gustafson, each added worker brings (1 − σ) of a worker: S = N − σ(N − 1) (linear, the most
  optimistic of the three).
- Gunther's Universal Scalability Law: contention σ (queueing for a shared resource: a GPU,
  the broker, the cores) and coherency κ (every worker paying for every other: rebalances,
  cross-talk): S = N / (1 + σ(N − 1) + κN(N − 1)). With κ > 0 throughput peaks at
  N* = √((1 − σ)/κ) and falls beyond it. κ = 0 is Amdahl.
- Karp–Flatt, the serial fraction measured at each N: e = (1/ψ − 1/N) / (1 − 1/N), ψ = X(N)/X(1).
  Constant e: a fixed serial part (Amdahl); e growing with N: overhead that grows (κ).

Fits minimise Σ (X_measured − X_predicted)² in requests/s. For given shape parameters the best
λ has a closed form, so only σ (and κ) are searched: a coarse grid, then a compass search with
the step halved until it is below 1e-12 (no scipy: two parameters in [0, 1] need nothing more).
Pure: no I/O, no numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Shape = Callable[[Sequence[float], float], float]  # (shape parameters, N) -> S(N)


def amdahl(sigma: float, n: float) -> float:
    return n / (1.0 + sigma * (n - 1.0))


def gustafson(sigma: float, n: float) -> float:
    return n - sigma * (n - 1.0)


def usl(sigma: float, kappa: float, n: float) -> float:
    return n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def karp_flatt(speedup: float, n: float) -> float:
    """The experimentally determined serial fraction of a speed-up `speedup` on `n` workers."""
    return (1.0 / speedup - 1.0 / n) / (1.0 - 1.0 / n)


def usl_peak(sigma: float, kappa: float) -> float:
    """N* where the USL's throughput is highest (inf when κ = 0: it only flattens)."""
    return math.sqrt(max(0.0, 1.0 - sigma) / kappa) if kappa > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Point:
    workers: int
    rate: float  # requests/s measured with that many workers


@dataclass(frozen=True, slots=True)
class Fit:
    law: str  # "Amdahl" | "Gustafson" | "USL"
    lam: float  # λ: one worker's requests/s, as fitted
    sigma: float
    kappa: float  # 0 for Amdahl and Gustafson
    residuals: tuple[float, ...]  # measured − predicted, requests/s, per point
    r2: float | None  # None when every measured rate is the same
    free: int  # parameters fitted (λ included)

    def speedup(self, n: float) -> float:
        if self.law == "Gustafson":
            return gustafson(self.sigma, n)
        return usl(self.sigma, self.kappa, n)

    def rate(self, n: float) -> float:
        return self.lam * self.speedup(n)

    @property
    def exact(self) -> bool:
        """As many parameters as points and through all of them: true by construction, so the
        points say nothing about how good the law is. (Not exact when a bound bit: σ >= 0.)"""
        tiny = 1e-6 * max(1.0, abs(self.lam))
        return len(self.residuals) <= self.free and all(abs(r) <= tiny for r in self.residuals)


def _best_lambda(points: Sequence[Point], shape: Callable[[float], float]) -> float:
    f = [shape(p.workers) for p in points]
    return sum(p.rate * v for p, v in zip(points, f, strict=True)) / sum(v * v for v in f)


def _sse(points: Sequence[Point], shape: Callable[[float], float]) -> float:
    lam = _best_lambda(points, shape)
    return sum((p.rate - lam * shape(p.workers)) ** 2 for p in points)


def _search(cost: Callable[[Sequence[float]], float], grids: Sequence[Sequence[float]],
            start: Sequence[float] | None = None) -> list[float]:
    """Minimise `cost` over [0, 1]^d: the best of a grid (and `start`), then compass steps."""
    candidates = [list(c) for c in itertools.product(*grids)]
    if start is not None:
        candidates.append([min(1.0, max(0.0, v)) for v in start])
    best = min(candidates, key=cost)
    value, step = cost(best), 0.125
    while step > 1e-12:
        moved = False
        for axis, sign in itertools.product(range(len(best)), (1.0, -1.0)):
            trial = list(best)
            trial[axis] = min(1.0, max(0.0, trial[axis] + sign * step))
            trial_value = cost(trial)
            if trial_value < value:
                best, value, moved = trial, trial_value, True
        if not moved:
            step /= 2.0
    return best


_SIGMAS = [i / 20 for i in range(21)]
_KAPPAS = [0.0, *(10.0 ** (e / 2) for e in range(-12, 1))]  # 1e-6 .. 1, log-spaced


def _finish(law: str, points: Sequence[Point], sigma: float, kappa: float, free: int) -> Fit:
    def shape(n: float) -> float:
        return gustafson(sigma, n) if law == "Gustafson" else usl(sigma, kappa, n)

    lam = _best_lambda(points, shape)
    residuals = tuple(p.rate - lam * shape(p.workers) for p in points)
    mean = sum(p.rate for p in points) / len(points)
    total = sum((p.rate - mean) ** 2 for p in points)
    r2 = 1.0 - sum(r * r for r in residuals) / total if total > 0 else None
    return Fit(law, lam, sigma, kappa, residuals, r2, free)


def _check(points: Sequence[Point]) -> None:
    if len({p.workers for p in points}) < 2:
        raise ValueError("a scaling fit needs throughput measured at two worker counts or more")


def fit_amdahl(points: Sequence[Point]) -> Fit:
    _check(points)
    [sigma] = _search(lambda s: _sse(points, lambda n: amdahl(s[0], n)), [_SIGMAS])
    return _finish("Amdahl", points, sigma, 0.0, 2)


def fit_gustafson(points: Sequence[Point]) -> Fit:
    _check(points)
    [sigma] = _search(lambda s: _sse(points, lambda n: gustafson(s[0], n)), [_SIGMAS])
    return _finish("Gustafson", points, sigma, 0.0, 2)


def fit_usl(points: Sequence[Point]) -> Fit:
    """σ and κ (and λ). With two worker counts κ cannot be told from σ: it is fixed at 0 and
    the fit is Amdahl's (`free` says 2, not 3)."""
    _check(points)
    if len({p.workers for p in points}) < 3:
        amdahl_fit = fit_amdahl(points)
        return Fit("USL", amdahl_fit.lam, amdahl_fit.sigma, 0.0, amdahl_fit.residuals,
                   amdahl_fit.r2, 2)
    sigma, kappa = _search(lambda s: _sse(points, lambda n: usl(s[0], s[1], n)),
                           [_SIGMAS, _KAPPAS], _linearised(points))
    return _finish("USL", points, sigma, kappa, 3)


def _linearised(points: Sequence[Point]) -> list[float] | None:
    """Gunther's linear form with λ = X(1): N·X(1)/X(N) − 1 = σ(N − 1) + κN(N − 1), solved by
    least squares without intercept: a start point for the search (None without N = 1)."""
    base = [p.rate for p in points if p.workers == 1]
    if not base:
        return None
    rows = [(p.workers - 1.0, p.workers * (p.workers - 1.0), p.workers * base[0] / p.rate - 1.0)
            for p in points if p.workers > 1]
    aa = sum(a * a for a, _, _ in rows)
    ab = sum(a * b for a, b, _ in rows)
    bb = sum(b * b for _, b, _ in rows)
    ay = sum(a * y for a, _, y in rows)
    by = sum(b * y for _, b, y in rows)
    det = aa * bb - ab * ab
    if det <= 0:
        return None
    return [(ay * bb - by * ab) / det, (by * aa - ay * ab) / det]
