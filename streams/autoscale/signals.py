"""One poll of everything the decision needs: Kafka lag + the workers' counters → `Load`.

Lag comes from Kafka (lag.py); what the lag is made of does not: there is one requests topic
for every model, and Kafka does not know which model a record asks for without decoding it. So
the backlog's model mix is *estimated* as the mix of recently answered requests (workers
answer each partition in order, so what they answer now is the head of the backlog). Costs and
per-replica throughput come from the counters' increase between two polls (estimate.py), seeded
from the request log (history.py) before any worker reported.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from streams.autoscale.decision import Load, mean_cost_s
from streams.autoscale.estimate import CostModel, ModelCounters, increase, total
from streams.autoscale.history import History
from streams.autoscale.lag import LagReader, LagSnapshot
from streams.autoscale.scrape import WorkerScrape, scrape_all
from streams.config import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Signals:
    lag: LagSnapshot
    load: Load
    reporting: int  # workers that answered /metrics
    active: int  # ... and own partitions


# Arrivals count as a sustained rate only when seen for this many polls in a row (their
# minimum): a burst shows up in one or two polls, and its messages are already in the lag.
SUSTAINED_POLLS = 3


class SignalReader:
    def __init__(self, settings: Settings, lag: LagReader | None = None) -> None:
        self.model = CostModel(settings.autoscale_replica_throughput)
        self._lag = lag or LagReader(settings)
        self._seen: dict[str, Mapping[str, ModelCounters]] = {}  # target key -> last counters
        self._last: tuple[float, LagSnapshot] | None = None
        self._arrivals: deque[float] = deque(maxlen=SUSTAINED_POLLS)

    async def start(self) -> None:
        await self._lag.start()

    async def close(self) -> None:
        await self._lag.close()

    def seed(self, history: History) -> None:
        self.model.seed(history.cost_s, history.mix)

    async def read(self, now_s: float, targets: Mapping[str, str]) -> Signals:
        """`targets`: key → metrics URL; a key names one worker *process* (a restarted worker
        gets a new key, so its counters restarting from zero are not a negative increase)."""
        lag = await self._lag.read()
        scrapes = dict(zip(targets, await scrape_all(list(targets.values())), strict=True))
        answered = {key: s for key, s in scrapes.items() if s is not None}
        active = sum(1 for s in answered.values() if s.assigned_partitions > 0)
        if self._last is not None:
            seconds = now_s - self._last[0]
            appended = max(0, lag.end_offsets_total - self._last[1].end_offsets_total)
            self._arrivals.append(appended / seconds)
            self._learn(answered, seconds, self._last[1], lag)
        sustained = min(self._arrivals) if len(self._arrivals) == SUSTAINED_POLLS else 0.0
        self._seen = {key: s.counters for key, s in answered.items()}
        self._last = (now_s, lag)
        load = Load(lag.total, dict(self.model.mix), dict(self.model.cost_s),
                    self.model.throughput, sustained)
        return Signals(lag, load, len(answered), active)

    def _learn(self, answered: Mapping[str, WorkerScrape], seconds: float,
               before: LagSnapshot, after: LagSnapshot) -> None:
        # A worker seen for the first time has no interval: its counters cover an unknown span,
        # so it counts neither in the work done nor among the replicas that did it.
        known = {key: s for key, s in answered.items() if key in self._seen}
        deltas = [increase(self._seen[key], s.counters) for key, s in known.items()]
        active = sum(1 for s in known.values() if s.assigned_partitions > 0)
        delta = total(deltas)
        self.model.learn_costs(delta)  # first: the saturation test prices the lag with them
        saturated = self._saturated(before, after, seconds, active)
        self.model.learn_throughput(delta, seconds, active, saturated)
        logger.debug("interval %.1fs: %d active, busy %.2f model-s, saturated %s -> %.2f "
                     "model-s/s per replica", seconds, active,
                     sum(c.busy_s for c in delta.values()), saturated, self.model.throughput)

    def _saturated(self, before: LagSnapshot, after: LagSnapshot, seconds: float,
                   active: int) -> bool:
        """Every partition had a backlog at both ends (so every replica had work), and enough
        of it to keep every active replica busy for the whole interval."""
        per_request = mean_cost_s(self.model.mix, self.model.cost_s)
        if per_request is None or active == 0:
            return False
        if any(min(lag, after.per_partition.get(p, 0)) == 0
               for p, lag in before.per_partition.items()):
            return False
        needed = seconds * active * self.model.throughput
        return min(before.total, after.total) * per_request >= needed
