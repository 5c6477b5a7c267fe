"""Read a worker's `/metrics` (Prometheus text) into per-model counters (estimate.py)."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from streams.autoscale.estimate import ModelCounters
from streams.worker.metrics import PREFIX

logger = logging.getLogger(__name__)

# (family name as the parser reports it, sample name) -> ModelCounters field
_FIELDS = {
    (PREFIX + "requests", PREFIX + "requests_total"): "requests",
    (PREFIX + "inference_seconds", PREFIX + "inference_seconds_sum"): "inference_sum_s",
    (PREFIX + "inference_seconds", PREFIX + "inference_seconds_count"): "inference_count",
    (PREFIX + "batch_size", PREFIX + "batch_size_sum"): "batch_sum",
    (PREFIX + "batch_size", PREFIX + "batch_size_count"): "batch_count",
}


@dataclass(frozen=True, slots=True)
class WorkerScrape:
    counters: dict[str, ModelCounters]  # model -> counters
    assigned_partitions: int  # 0 while the worker is still joining the group


def parse_scrape(text: str) -> WorkerScrape:
    """Per-model counters from an exposition body; statuses of `requests_total` are summed."""
    values: dict[str, dict[str, float]] = {}
    assigned = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == PREFIX + "assigned_partitions":
                assigned = int(sample.value)
            name = _FIELDS.get((family.name, sample.name))
            model = sample.labels.get("model")
            if name is None or model is None:
                continue
            per_model = values.setdefault(model, {})
            per_model[name] = per_model.get(name, 0.0) + float(sample.value)
    return WorkerScrape({model: ModelCounters(**fields) for model, fields in values.items()},
                        assigned)


def _fetch(url: str, timeout_s: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: bytes = response.read()
    return body.decode()


async def scrape(url: str, timeout_s: float = 2.0) -> WorkerScrape | None:
    """One worker's counters, or None when it does not answer (starting, stopping, gone)."""
    try:
        text = await asyncio.to_thread(_fetch, url, timeout_s)
    except OSError as exc:
        logger.debug("no metrics from %s: %r", url, exc)
        return None
    return parse_scrape(text)


async def scrape_all(urls: Sequence[str]) -> list[WorkerScrape | None]:
    return list(await asyncio.gather(*(scrape(url) for url in urls)))
