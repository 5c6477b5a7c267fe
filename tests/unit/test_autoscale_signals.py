"""Autoscaling signals without services: counters → cost/mix/throughput, /metrics parsing,
the poll that joins lag and counters, and the children's environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from streams.autoscale import signals as signals_module
from streams.autoscale.estimate import CostModel, ModelCounters, increase, total
from streams.autoscale.lag import LagSnapshot
from streams.autoscale.procs import settings_env, worker_env
from streams.autoscale.scrape import WorkerScrape, parse_scrape
from streams.autoscale.signals import SignalReader
from streams.config import Settings
from streams.worker.metrics import WorkerMetrics
from streams.worker.stage_timings import Timings


def batches(model: str, sizes_and_seconds: Sequence[tuple[int, float]]) -> ModelCounters:
    """Counters as the worker leaves them: inference observed once per request."""
    return ModelCounters(
        requests=sum(n for n, _ in sizes_and_seconds),
        inference_sum_s=sum(n * t for n, t in sizes_and_seconds),
        inference_count=sum(n for n, _ in sizes_and_seconds),
        batch_sum=sum(n for n, _ in sizes_and_seconds),
        batch_count=len(sizes_and_seconds))


def test_cost_is_batch_time_shared_by_the_batch() -> None:
    counters = batches("m", [(4, 0.2), (4, 0.2)])  # two full batches of 4, 0.2 s each
    assert counters.busy_s == pytest.approx(0.4)
    assert counters.cost_s == pytest.approx(0.05)
    # unequal batches: batch-weighted mean size 5, request-weighted 6.8 -> cost errs high
    uneven = batches("m", [(8, 0.4), (2, 0.1)])  # true cost 0.5 s / 10 = 0.05
    assert uneven.cost_s == pytest.approx((8 * 0.4 + 2 * 0.1) / 5 / 10)  # 0.068
    assert ModelCounters().cost_s is None


def test_increase_handles_a_restarted_worker() -> None:
    before = {"m": ModelCounters(10, 1.0, 10, 10, 2)}
    later = {"m": ModelCounters(15, 1.5, 15, 15, 3), "n": ModelCounters(1, 0.1, 1, 1, 1)}
    assert increase(before, later) == {"m": ModelCounters(5, 0.5, 5, 5, 1),
                                       "n": ModelCounters(1, 0.1, 1, 1, 1)}
    restarted = {"m": ModelCounters(3, 0.3, 3, 3, 1)}
    assert increase(before, restarted) == restarted
    assert total([later, restarted])["m"] == ModelCounters(18, 1.8, 18, 18, 4)


def test_cost_model_mix_cost_and_throughput() -> None:
    model = CostModel(prior_throughput=1.0, alpha=0.5)
    delta = {"embed": batches("embed", [(10, 0.05)] * 9),  # 90 requests, 0.45 s busy
             "gen": batches("gen", [(10, 1.6)])}  # 10 requests, 1.6 s busy
    model.learn_costs(delta)
    model.learn_throughput(delta, seconds=5.0, replicas=1, saturated=False)
    assert model.mix == pytest.approx({"embed": 0.9, "gen": 0.1})
    assert model.cost_s == pytest.approx({"embed": 0.005, "gen": 0.16})
    assert model.throughput == 1.0  # unsaturated 0.41 model-s/s is demand, not capacity
    model.learn_throughput(delta, seconds=2.5, replicas=1, saturated=True)
    assert model.throughput == pytest.approx(0.82)  # (0.45 + 1.6) / 2.5: replaces the prior
    model.learn_throughput(delta, seconds=2.05, replicas=1, saturated=True)
    assert model.throughput == pytest.approx((0.82 + 1.0) / 2)
    model.learn_costs({"embed": batches("embed", [(10, 0.05)])})
    assert model.mix == pytest.approx({"embed": 0.95, "gen": 0.05})  # gen fades out


def test_parse_scrape_reads_a_real_worker_exposition() -> None:
    metrics = WorkerMetrics()
    for _ in range(4):
        metrics.observe_result("enc", "ok", Timings(inference_s=0.2))
    metrics.observe_result("enc", "expired", Timings(kafka_wait_s=1.0))
    metrics.observe_batch("enc", 4)
    metrics.set_assigned_partitions(3)
    scraped = parse_scrape(metrics.render()[0].decode())
    assert scraped.assigned_partitions == 3
    assert scraped.counters == {"enc": ModelCounters(requests=5, inference_sum_s=0.8,
                                                     inference_count=4, batch_sum=4,
                                                     batch_count=1)}
    assert scraped.counters["enc"].cost_s == pytest.approx(0.05)


class FakeLag:
    def __init__(self, snapshots: list[LagSnapshot]) -> None:
        self.snapshots = snapshots

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self) -> LagSnapshot:
        return self.snapshots.pop(0)


async def test_signal_reader_joins_lag_arrivals_and_counters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scrapes = [[WorkerScrape({"enc": batches("enc", [(10, 0.1)] * n)}, 2)]
               for n in (1, 11, 21, 31)]  # +100 requests and 1 s busy per poll

    async def fake_scrape_all(urls: Sequence[str]) -> list[WorkerScrape | None]:
        return list(scrapes.pop(0)) + [None] * (len(urls) - 1)

    monkeypatch.setattr(signals_module, "scrape_all", fake_scrape_all)
    lag = FakeLag([LagSnapshot({0: 500, 1: 500}, 5000), LagSnapshot({0: 450, 1: 450}, 5200),
                   LagSnapshot({0: 400, 1: 400}, 5300), LagSnapshot({0: 400, 1: 400}, 5500)])
    reader = SignalReader(Settings(), lag=lag)  # type: ignore[arg-type]
    targets: Mapping[str, str] = {"w-0#1": "u0", "w-1#2": "u1"}  # w-1 not up yet
    first = await reader.read(100.0, targets)
    assert (first.load.lag, first.reporting, first.active) == (1000, 1, 1)
    assert first.load.cost_s == {}  # no interval yet
    second = await reader.read(102.0, targets)
    assert second.load.cost_s == pytest.approx({"enc": 0.01})
    assert second.load.mix == {"enc": 1.0}
    # saturated (900 x 0.01 = 9 model-s >= 2 s x 1 replica): throughput 1.0 s busy / 2 s
    assert second.load.replica_throughput == pytest.approx(0.5)
    # arrivals: 100/s, 50/s, 100/s; a rate counts once seen for three polls (their minimum)
    assert second.load.arrival_per_s == 0.0
    assert (await reader.read(104.0, targets)).load.arrival_per_s == 0.0
    assert (await reader.read(106.0, targets)).load.arrival_per_s == pytest.approx(50.0)


def test_children_get_the_supervisors_settings_and_their_own_identity(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1234", requests_topic="req-x",
                        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                        kafka_sasl_username="u", kafka_sasl_password="s3cret",
                        request_log=False, clickhouse_chdb_path=tmp_path / "shared")
    env = settings_env(settings)
    assert env["STREAMSERVE_KAFKA_SASL_PASSWORD"] == "s3cret"
    assert env["STREAMSERVE_REQUEST_LOG"] == "false"
    assert "STREAMSERVE_CLICKHOUSE_CHDB_PATH" not in env  # chDB: one path per process
    child = worker_env(settings, "worker-2", 7001, tmp_path / "w2")
    assert child["STREAMSERVE_WORKER_ID"] == "worker-2"
    assert child["STREAMSERVE_WEB_PORT"] == "7001"
    # autoscaled workers leave the group for good when scaled down: no static membership
    assert child["STREAMSERVE_STATIC_MEMBERSHIP"] == "false"
    # otherwise the child's Settings, parsed from that environment, are the supervisor's
    parsed = Settings(**{k.removeprefix("STREAMSERVE_").lower(): v for k, v in child.items()
                         if k.startswith("STREAMSERVE_")})
    own = {"worker_id", "web_port", "data_dir", "clickhouse_chdb_path", "static_membership"}
    assert parsed.model_dump(exclude=own) == settings.model_dump(exclude=own)
    assert parsed.chdb_path == tmp_path / "w2" / "chdb"
