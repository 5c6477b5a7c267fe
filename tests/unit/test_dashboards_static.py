"""Static checks of the Grafana dashboards and provisioning under dashboards/ (no services).

Every PromQL expression is checked against the exposition of a real `WorkerMetrics` that has
observed traffic: each `streamserve_*` name must be a sample name it exposes (so a typo, or a bare
histogram name instead of its `_bucket`/`_sum`/`_count` series, fails), label matchers and
`by (...)` labels must exist on those series, and legends may only use labels the expression keeps.
The integration test (tests/integration/test_dashboards.py) runs the same queries for real:
promtool, a Prometheus server scraping a worker's metrics, and the SQL panels on chDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from streams.analytics.sink.request_log import RequestLogRow
from streams.worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"
DATASOURCE_UIDS = {"prometheus": "prometheus", "grafana-clickhouse-datasource": "clickhouse"}
TARGET_LABELS = frozenset({"instance", "job"})  # attached by Prometheus at scrape time
MODELS = ("m1", "m2")  # the models of the sample traffic
ENV_REFERENCE = re.compile(r"^\$(\{CLICKHOUSE_PASSWORD\}|__env\{CLICKHOUSE_PASSWORD\})$")

SELECTOR = re.compile(r"\b(streamserve_[a-z0-9_]+)\b(?:\s*\{([^}]*)\})?")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
GROUPING = re.compile(r"\b(by|without)\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    language: str  # "promql" or "sql"
    text: str
    legend: str = ""
    format: Any = None

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref}"


# ------------------------------------------------------------------ dashboards and their queries
@cache
def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def iter_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows flattened in."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(board) if p.get("type") != "row"]


def all_queries() -> list[Query]:
    out = []
    for name, board in load_dashboards().items():
        for panel in data_panels(board):
            for target in panel.get("targets", []):
                if "expr" in target:
                    out.append(Query(name, panel["title"], target["refId"], "promql",
                                     target["expr"], target.get("legendFormat", "")))
                else:
                    out.append(Query(name, panel["title"], target["refId"], "sql",
                                     target.get("rawSql", ""), format=target.get("format")))
    return out


def queries(language: str) -> list[Query]:
    return [q for q in all_queries() if q.language == language]


def variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in board.get("templating", {}).get("list", []) if v.get("name") == name]
    assert len(found) == 1, f"{board.get('uid')}: expected one ${name} variable"
    return found[0]


def promql_for_prometheus(expr: str, *, models: tuple[str, ...] = MODELS,
                          rate_interval: str = "1m") -> str:
    """The expression as Grafana sends it: `$model` as a regex of the selected values
    (multi-value variables are formatted `(a|b)`), interval variables as durations."""
    text = expr.replace("${model}", "$model").replace("$model", "(" + "|".join(models) + ")")
    for name in ("$__rate_interval", "$__interval", "$__range"):
        text = text.replace(name, rate_interval)
    assert "$" not in text, f"unsupported Grafana variable left in {expr!r}"
    return text


# ------------------------------------------------------------------ a worker's real exposition
class FakeSink:
    """What `WorkerMetrics.bind_sink` reads: a growing spool and counters."""

    def __init__(self) -> None:
        self.rows_written = 0
        self.insert_errors = 0
        self.spool = 0

    @property
    def spool_depth(self) -> int:
        return self.spool


def feed(metrics: WorkerMetrics, sink: FakeSink, tick: int) -> None:
    """One tick of traffic touching every metric: ok rows of a generative and an embedding model
    (with tokens and time to first token), one error, expiry and rejection, a batch per model,
    consumer lag, a dead letter, sink activity, readiness and partitions."""
    now = 1_700_000_000.0 + tick
    for model, tokens in (("m1", 8), ("m2", 0)):
        for i in range(3):
            metrics.observe_row(RequestLogRow(
                f"{model}-{tick}-{i}", model, "ok", created_at=now - 1, completed_at=now,
                kafka_wait_ms=2.0 + i, queue_wait_ms=3.0 + i, inference_ms=20.0 + 5 * i,
                total_ms=40.0 + 10 * i + tick % 7, tokens_out=tokens,
                time_to_first_token_ms=15.0 + i if tokens else None))
        for status in ("error", "expired", "rejected"):
            metrics.observe_row(RequestLogRow(f"{model}-{tick}-{status}", model, status,
                                              created_at=now - 1, completed_at=now,
                                              kafka_wait_ms=1.0, total_ms=5.0))
        metrics.observe_batch(model, 1 + tick % 8)
        metrics.shed(model)
        metrics.model_loaded(model, 1.5)
    for partition in range(3):
        metrics.set_lag("inference.requests", partition, 10 * partition + tick % 5)
    metrics.dlq("decode_error")
    metrics.in_flight.set(tick % 4)
    metrics.set_assigned_partitions(3)
    metrics.set_ready("models_loaded", True)
    metrics.task_restarted("lane-m1:1")
    for kind in ("error", "transient", "timeout"):
        metrics.model_failed("m1", kind)
    metrics.set_breaker("m1", tick % 2 == 0)
    metrics.record_reduced("dlq")
    metrics.abandoned(1)
    metrics.handover.observe(0.05 * (1 + tick % 3))
    for outcome in ("committed", "aborted", "fenced"):
        metrics.transaction(outcome, 3)
    metrics.holdback.observe(0.1 + 0.01 * (tick % 5))
    metrics.replayed("handover", 0.02)
    metrics.replayed("fenced", 0.01)
    sink.rows_written += 8
    sink.insert_errors += 1
    sink.spool = tick % 10


def sample_metrics() -> tuple[WorkerMetrics, FakeSink]:
    metrics, sink = WorkerMetrics(), FakeSink()
    metrics.bind_sink(sink)
    feed(metrics, sink, 0)
    return metrics, sink


@cache
def exposition() -> dict[str, frozenset[str]]:
    """Sample name -> label names, from the text a worker's `/metrics` serves."""
    body = sample_metrics()[0].render()[0].decode()
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in samples.items()}


def promql_problems(expr: str, legend: str = "") -> list[str]:
    """What is wrong with an expression against the exposition; [] when it is sound."""
    known = exposition()
    found = SELECTOR.findall(expr)
    if not found:
        return [f"no streamserve_ metric in {expr!r}"]
    problems = []
    labels: set[str] = set(TARGET_LABELS)
    for name, matchers in found:
        if name not in known:
            hint = " (histograms expose _bucket/_sum/_count)" if f"{name}_bucket" in known else ""
            problems.append(f"{name} is not exposed by WorkerMetrics{hint}")
            continue
        labels |= known[name]
        for label in MATCHER.findall(matchers):
            if label not in known[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    grouped: set[str] = set()
    for kind, group in GROUPING.findall(expr):
        names = {g.strip() for g in group.split(",") if g.strip()}
        problems += [f"by/without label {g!r} is on none of the series" for g in names - labels]
        if kind == "by":
            grouped |= names
    if "histogram_quantile" in expr:
        if not all(name.endswith("_bucket") for name, _ in found):
            problems.append("histogram_quantile needs the _bucket series")
        if any("le" not in {g.strip() for g in group.split(",")}
               for _, group in GROUPING.findall(expr)):
            problems.append("histogram_quantile needs `le` in every `by (...)`")
    kept = grouped or labels  # aggregated expressions keep only their `by` labels
    problems += [f"legend uses {{{{{label}}}}} which the expression drops"
                 for label in LEGEND_LABEL.findall(legend) if label not in kept]
    return problems


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def provisioned_datasources() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    assert loaded["apiVersion"] == 1
    sources: list[dict[str, Any]] = loaded["datasources"]
    return sources


# ------------------------------------------------------------------ tests
def test_both_dashboards_exist() -> None:
    assert set(load_dashboards()) == {"streamserve-live.json", "streamserve-analytics.json"}


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_dashboard_is_valid_grafana_json(name: str) -> None:
    board = load_dashboards()[name]
    assert board["uid"] == name.removesuffix(".json") and board["title"]
    assert board["schemaVersion"] >= 36 and board["id"] is None
    ids = [p["id"] for p in iter_panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in iter_panels(board):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys(), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        covered = {(grid["y"] + dy, grid["x"] + dx)
                   for dy in range(grid["h"]) for dx in range(grid["w"])}
        assert not covered & cells, f"panel {panel['title']!r} overlaps another"
        cells |= covered
    panels = data_panels(board)
    assert len(panels) >= 10
    for panel in panels:
        title, source = panel.get("title"), panel.get("datasource")
        assert title and panel.get("type"), panel
        assert isinstance(source, dict) and DATASOURCE_UIDS.get(source["type"]) == source["uid"]
        targets = panel.get("targets")
        assert targets, f"{title}: no targets"
        assert len({t["refId"] for t in targets}) == len(targets), f"{title}: duplicate refId"
        for target in targets:
            assert target.get("datasource") == source, f"{title}: target datasource differs"
            text = target.get("expr") if source["type"] == "prometheus" else target.get("rawSql")
            assert isinstance(text, str) and text.strip(), f"{title}/{target['refId']}: no query"


def test_live_dashboard_has_model_variable_used_by_every_model_series() -> None:
    board = load_dashboards()["streamserve-live.json"]
    model = variable(board, "model")
    assert model["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    definition = model["query"]["query"]
    assert definition == model["definition"]
    metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", definition).groups()  # type: ignore[union-attr]
    assert (metric, label) == ("streamserve_requests_total", "model")
    assert label in exposition()[metric]
    assert model["multi"] and model["includeAll"] and model["allValue"] == ".*"
    for query in queries("promql"):
        for name, matchers in SELECTOR.findall(query.text):
            if "model" in exposition().get(name, ()):
                assert 'model=~"$model"' in matchers, f"{query.id}: {name} ignores $model"


def test_exposition_has_every_documented_metric() -> None:
    names = set(exposition())
    for stage in ("kafka_wait", "queue_wait", "inference", "end_to_end", "time_to_first_token",
                  "time_per_output_token"):
        assert f"streamserve_{stage}_seconds_bucket" in names
    assert {"streamserve_batch_size_bucket", "streamserve_requests_total",
            "streamserve_dlq_total", "streamserve_in_flight_requests",
            "streamserve_consumer_lag", "streamserve_sink_spool_rows",
            "streamserve_sink_insert_errors_total", "streamserve_sink_rows_written_total",
            "streamserve_model_load_seconds", "streamserve_assigned_partitions",
            "streamserve_shed_total",
            "streamserve_worker_ready"} <= names


@pytest.mark.parametrize("query", queries("promql"), ids=lambda q: q.id)
def test_promql_uses_exposed_metrics_and_labels(query: Query) -> None:
    assert promql_problems(query.text, query.legend) == []


@pytest.mark.parametrize(("expr", "legend", "problem"), [
    ('sum(rate(streamserve_request_total{model=~"$model"}[5m]))', "", "not exposed"),
    ("histogram_quantile(0.9, sum by (le) (rate(streamserve_end_to_end_seconds[5m])))", "",
     "_bucket/_sum/_count"),
    ('sum(rate(streamserve_requests_total{modle=~"$model"}[5m]))', "", "no label 'modle'"),
    ("sum by (reason) (rate(streamserve_requests_total[5m]))", "", "'reason'"),
    ("sum by (model) (rate(streamserve_requests_total[5m]))", "{{status}}", "drops"),
    ("histogram_quantile(0.9, sum by (model) (rate(streamserve_inference_seconds_bucket[5m])))",
     "", "`le`"),
    ("sum(rate(http_requests_total[5m]))", "", "no streamserve_ metric"),
])
def test_promql_checker_rejects_broken_expressions(expr: str, legend: str, problem: str) -> None:
    problems = promql_problems(expr, legend)
    assert any(problem in p for p in problems), problems


def test_every_exposed_metric_has_a_panel() -> None:
    """A metric added to WorkerMetrics without a panel fails here: add one to streamserve-live.

    Families come from the registry, so a labelled metric nobody observed yet counts too."""
    used = {name for q in queries("promql") for name, _ in SELECTOR.findall(q.text)}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    families = list(WorkerMetrics().registry.collect())
    assert len(families) >= 17
    for family in families:
        series = {family.name + s for s in suffixes.get(family.type, ("",))}
        if family.type == "counter" and family.name.endswith("_total"):
            series = {family.name}
        assert series & used, f"no panel shows {family.name} ({sorted(series)})"


@pytest.mark.parametrize("query", queries("sql"), ids=lambda q: q.id)
def test_sql_reads_the_deduplicated_log_in_the_time_range(query: Query) -> None:
    sql = query.text
    assert re.search(r"\bstreamserve\.request_log\s+FINAL\b", sql) or re.search(
        r"\bstreamserve\.(throughput_per_minute|stage_latency|status_rates|"
        r"batch_size_distribution)\(", sql), f"{query.id}: read request_log FINAL or a view"
    assert "$__timeFilter(created_at)" in sql, f"{query.id}: ignores the time picker"
    assert "${model:singlequote}" in sql, f"{query.id}: ignores $model"
    assert query.format in (0, 1), f"{query.id}: format must be 0 (time series) or 1 (table)"
    if query.format == 0:
        assert re.search(r"\bAS time\b", sql), f"{query.id}: a time series needs a `time` column"


def test_analytics_model_variable_reads_clickhouse() -> None:
    model = variable(load_dashboards()["streamserve-analytics.json"], "model")
    assert model["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": "clickhouse"}
    assert "streamserve.request_log" in model["query"]["rawSql"]
    assert model["multi"] and model["includeAll"]


def test_datasource_provisioning_matches_dashboards_and_compose() -> None:
    sources = {s["uid"]: s for s in provisioned_datasources()}
    used = {p["datasource"]["uid"] for b in load_dashboards().values() for p in data_panels(b)}
    assert used == set(sources) == {"prometheus", "clickhouse"}
    services = compose()["services"]
    prom, ch = sources["prometheus"], sources["clickhouse"]
    assert prom["type"] == "prometheus" and prom["url"] == "http://prometheus:9090"
    assert "prometheus" in services
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert prom["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]
    assert ch["type"] == "grafana-clickhouse-datasource"
    data = ch["jsonData"]
    assert data["host"] == "clickhouse" and "clickhouse" in services
    assert (data["protocol"], data["port"]) in {("native", 9000), ("http", 8123)}
    clickhouse_env = services["clickhouse"]["environment"]
    assert data["username"] == clickhouse_env["CLICKHOUSE_USER"]
    assert data["defaultDatabase"] == clickhouse_env["CLICKHOUSE_DB"] == "streamserve"
    assert ENV_REFERENCE.match(ch["secureJsonData"]["password"]), "password must come from env"
    grafana = services["grafana"]
    assert "CLICKHOUSE_PASSWORD" in grafana["environment"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    loaded = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())
    assert loaded["apiVersion"] == 1
    (provider,) = loaded["providers"]
    assert provider["type"] == "file"
    volumes = compose()["services"]["grafana"]["volumes"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in volumes}
    assert mounts["./dashboards"] == provider["options"]["path"]
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
