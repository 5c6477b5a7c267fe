"""How many workers a backlog needs: the cost-weighted rule, KEDA's lag rule, and stabilisation.

Pure: no clock, no I/O, no Kafka/Prometheus/ClickHouse. The caller passes the time and the
measured inputs, so every number here can be checked by hand (tests/unit/test_autoscale*.py).

Work is measured in *model-seconds*: the seconds of batch compute a request costs one replica
(its batch's compute time shared by the batch's requests). One generate request can cost a
hundred embed requests, which a plain message count (KEDA's rule) cannot see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bounds:
    min_replicas: int
    max_replicas: int
    partitions: int  # a consumer group never uses more consumers than partitions
    target_drain_s: float  # a backlog should be gone within this many seconds

    def clamp(self, replicas: int) -> int:
        upper = max(1, min(self.max_replicas, self.partitions))
        return max(min(self.min_replicas, upper), min(replicas, upper))


@dataclass(frozen=True, slots=True)
class Load:
    """What the service looks like now. Costs and throughput are measured (see signals.py)."""

    lag: int  # messages behind the group's committed offsets, all partitions
    mix: Mapping[str, float]  # model -> share of recent requests (estimate of the backlog's mix)
    cost_s: Mapping[str, float]  # model -> model-seconds per request
    replica_throughput: float  # model-seconds one replica completes per second when busy
    arrival_per_s: float = 0.0  # messages appended per second (keeps steady traffic served)


@dataclass(frozen=True, slots=True)
class Proposal:
    replicas: int  # bounded
    raw: int  # before bounds
    work_s: float | None  # backlog work in model-seconds (None: no cost measured yet)
    reason: str


def mean_cost_s(mix: Mapping[str, float], cost_s: Mapping[str, float]) -> float | None:
    """Expected model-seconds of one request of the mix; None when nothing is measured.

    A model in the mix without a measured cost is priced at the dearest measured one (err
    towards scaling up); an empty mix is priced as an even mix of the measured models.
    """
    if not cost_s:
        return None
    shares = {m: s for m, s in mix.items() if s > 0} or dict.fromkeys(cost_s, 1.0)
    total = sum(shares.values())
    dearest = max(cost_s.values())
    return sum(share * cost_s.get(model, dearest) for model, share in shares.items()) / total


def backlog_work_s(load: Load) -> float | None:
    """Σ_model lag × share_model × cost_model, in model-seconds."""
    per_request = mean_cost_s(load.mix, load.cost_s)
    return None if per_request is None else load.lag * per_request


def keda_replicas(lag: int, lag_threshold: int, bounds: Bounds) -> int:
    """KEDA's Kafka scaler: ceil(total lag / lagThreshold), within min/max and partitions."""
    return bounds.clamp(math.ceil(lag / lag_threshold))


def desired_replicas(load: Load, bounds: Bounds, lag_threshold: int) -> Proposal:
    """ceil((backlog work + arrivals during the drain) / (per-replica throughput × drain time)).

    With no traffic arriving this is the plain ceil(work / (throughput × target)); the arrival
    term keeps enough replicas for steady traffic once the backlog is gone, so a busy service
    does not scale down to `min` only to build a backlog again. No cost measured yet: KEDA's rule.
    """
    per_request = mean_cost_s(load.mix, load.cost_s)
    if per_request is None:
        raw = math.ceil(load.lag / lag_threshold)
        return Proposal(bounds.clamp(raw), raw, None,
                        f"no cost measured yet: KEDA rule ceil({load.lag}/{lag_threshold})")
    work = load.lag * per_request
    arriving = load.arrival_per_s * per_request  # model-seconds per second
    capacity = load.replica_throughput * bounds.target_drain_s
    raw = math.ceil(round((work + arriving * bounds.target_drain_s) / capacity, 9))
    reason = (f"backlog {load.lag} msgs x {per_request * 1000:.1f} ms = {work:.1f} model-s"
              f" + {arriving:.2f} model-s/s arriving, over {load.replica_throughput:.2f}"
              f" model-s/s per replica x {bounds.target_drain_s:g} s -> {raw}")
    return Proposal(bounds.clamp(raw), raw, work, reason)


class Stabilizer:
    """Scale up at once; scale down only to the highest value desired during the whole window.

    Like the HPA's downscale stabilization: the recommendation is the maximum desired value
    over the last `window_s`. Desired values are piecewise constant between observations, so
    the last observation before the window's start still counts (it held at the start). Until
    observations cover a whole window, nothing scales down.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._history: list[tuple[float, int]] = []  # (time_s, desired), oldest first

    def apply(self, now_s: float, current: int, desired: int) -> int:
        self._history.append((now_s, desired))
        start = now_s - self.window_s
        while len(self._history) > 1 and self._history[1][0] <= start:
            self._history.pop(0)  # the next one also held at `start`: this one is older
        if desired >= current:
            return desired
        if self._history[0][0] > start:
            return current  # we have not seen a whole window yet
        return min(current, max(value for _, value in self._history))


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int  # what to run now (stabilised)
    proposal: Proposal  # the unstabilised cost-weighted answer
    keda: int  # what KEDA's rule would run, for comparison

    @property
    def reason(self) -> str:
        held = "" if self.replicas == self.proposal.replicas else (
            f"; held at {self.replicas} by the downscale window")
        return f"{self.proposal.reason}{held} (KEDA rule: {self.keda})"


class Autoscaler:
    """The whole policy: cost-weighted proposal → bounds → stabilisation; KEDA alongside."""

    def __init__(self, bounds: Bounds, window_s: float, lag_threshold: int) -> None:
        self.bounds = bounds
        self.lag_threshold = lag_threshold
        self.stabilizer = Stabilizer(window_s)

    def decide(self, now_s: float, current: int, load: Load) -> Decision:
        proposal = desired_replicas(load, self.bounds, self.lag_threshold)
        replicas = self.stabilizer.apply(now_s, current, proposal.replicas)
        return Decision(replicas, proposal, keda_replicas(load.lag, self.lag_threshold,
                                                          self.bounds))
