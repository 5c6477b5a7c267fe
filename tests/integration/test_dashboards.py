"""The dashboards' queries run for real: promtool, a Prometheus server, chDB.

- promtool (Debian package `prometheus`) parses every PromQL expression as a recording rule.
- A real Prometheus server scrapes a real `WorkerMetrics` (served over HTTP, fed traffic while the
  test runs) and every live-dashboard expression must return at least one finite value.
- Every analytics SQL runs on chDB with the migrations applied and request-log rows inserted
  through the sink's inserter (plus a replay, so `FINAL` matters), and must return rows.

Grafana itself is not installed here, so Grafana's variables and the ClickHouse plugin's macros are
substituted the way Grafana and grafana-clickhouse-datasource v4 expand them (pkg/macros/macros.go):

    $__timeFilter(col)                     col >= toDateTime(FROM) AND col <= toDateTime(TO)
    $__timeFilter_ms(col)                  col >= fromUnixTimestamp64Milli(FROM_MS) AND ... TO_MS
    $__fromTime / $__toTime                toDateTime(FROM) / toDateTime(TO)
    $__fromTime_ms / $__toTime_ms          fromUnixTimestamp64Milli(FROM_MS) / ...(TO_MS)
    $__timeInterval(col)                   toStartOfInterval(toDateTime(col), INTERVAL N second)
    $__interval_s                          N
    $__conditionalAll(cond, $model)        cond, or 1=1 when "All" is selected (frontend macro)
    ${model:singlequote}                   'm1','m2'

with FROM = NOW - 1 h, TO = NOW + 1 min and N = 60 (NOW is fixed at import; the child process
stamps its rows relative to the same NOW, so a slow session cannot push them out of range).
PromQL gets `$model` -> `(m1|m2)` and the interval variables -> a duration (see
`promql_for_prometheus`). Any `$` left over fails the test.

chDB allows one data path per process, and other tests in the session own one: the SQL runs in a
child process (`python -m tests.integration.test_dashboards run-sql ...`) with its own path.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.kafka.stack.broker import free_port
from tests.unit.test_dashboards_static import (
    MODELS,
    ROOT,
    Query,
    feed,
    load_dashboards,
    promql_for_prometheus,
    queries,
    sample_metrics,
    variable,
)

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
RANGE_BEFORE_S, RANGE_AFTER_S, INTERVAL_S = 3600, 60, 60
NOW = int(time.time())  # the rows and the time range of every query are relative to it
BROKEN_SQL = "SELECT count() FROM streamserve.no_such_table FINAL"


# ------------------------------------------------------------------ Grafana macro substitution
def _split_args(text: str) -> list[str]:
    args, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return [*args, current.strip()]


def _expand_calls(sql: str, macro: str, expand: Callable[[list[str]], str]) -> str:
    """Replace every `macro(args)` (balanced parentheses) by expand(args)."""
    opening = macro + "("
    while (start := sql.find(opening)) >= 0:
        depth, end = 0, start + len(macro)
        for end in range(start + len(macro), len(sql)):
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            if depth == 0:
                break
        else:
            raise ValueError(f"unbalanced {macro} in {sql!r}")
        sql = sql[:start] + expand(_split_args(sql[start + len(opening):end])) + sql[end + 1:]
    return sql


def grafana_sql(sql: str, *, start: int, end: int, interval_s: int = INTERVAL_S,
                models: tuple[str, ...] = MODELS, all_selected: bool = False) -> str:
    """The SQL Grafana's ClickHouse data source would send (see the module docstring)."""
    sql = _expand_calls(sql, "$__conditionalAll",
                        lambda a: "1=1" if all_selected else a[0])
    sql = sql.replace("${model:singlequote}", ",".join(f"'{m}'" for m in models))
    sql = _expand_calls(sql, "$__timeFilter_ms", lambda a: (
        f"{a[0]} >= fromUnixTimestamp64Milli({start * 1000}) AND "
        f"{a[0]} <= fromUnixTimestamp64Milli({end * 1000})"))
    sql = _expand_calls(sql, "$__timeFilter", lambda a: (
        f"{a[0]} >= toDateTime({start}) AND {a[0]} <= toDateTime({end})"))
    sql = _expand_calls(sql, "$__timeInterval", lambda a: (
        f"toStartOfInterval(toDateTime({a[0]}), INTERVAL {interval_s} second)"))
    for macro, value in (("$__fromTime_ms", f"fromUnixTimestamp64Milli({start * 1000})"),
                         ("$__toTime_ms", f"fromUnixTimestamp64Milli({end * 1000})"),
                         ("$__fromTime", f"toDateTime({start})"),
                         ("$__toTime", f"toDateTime({end})"),
                         ("$__interval_s", str(interval_s))):
        sql = sql.replace(macro, value)
    if "$" in sql:
        raise ValueError(f"unsupported Grafana macro or variable left in {sql!r}")
    return sql


def test_macro_substitution_matches_the_plugin() -> None:
    sql = ("SELECT $__timeInterval(completed_at) AS time FROM t WHERE $__timeFilter(created_at) "
           "AND $__conditionalAll(model IN (${model:singlequote}), $model)")
    assert grafana_sql(sql, start=10, end=20) == (
        "SELECT toStartOfInterval(toDateTime(completed_at), INTERVAL 60 second) AS time FROM t "
        "WHERE created_at >= toDateTime(10) AND created_at <= toDateTime(20) "
        "AND model IN ('m1','m2')")
    assert grafana_sql(sql, start=10, end=20, all_selected=True).endswith("AND 1=1")
    with pytest.raises(ValueError, match="unsupported"):
        grafana_sql("SELECT $__unknownMacro(x)", start=10, end=20)


# ------------------------------------------------------------------ promtool
def _rules_file(path: Path, expressions: list[str]) -> Path:
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(expressions)]
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    return path


def test_promtool_accepts_every_expression(tmp_path: Path) -> None:
    if PROMTOOL is None:
        pytest.fail("`promtool` is not installed (apt-get install prometheus)")
    expressions = [promql_for_prometheus(q.text) for q in queries("promql")]
    assert len(expressions) >= 20
    checked = subprocess.run([PROMTOOL, "check", "rules", str(_rules_file(tmp_path / "ok.yml",
                                                                          expressions))],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in checked.stdout
    broken = _rules_file(tmp_path / "broken.yml", ["sum(rate(streamserve_requests_total[1m])"])
    rejected = subprocess.run([PROMTOOL, "check", "rules", str(broken)],
                              capture_output=True, text=True, timeout=60)
    assert rejected.returncode != 0  # the check bites


# ------------------------------------------------------------------ a real Prometheus server
@pytest.fixture
def worker_endpoint() -> Iterator[int]:
    """A worker's `/metrics` served over HTTP while traffic keeps flowing (10 ticks a second)."""
    metrics, sink = sample_metrics()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = metrics.render()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stop = threading.Event()

    def traffic() -> None:
        tick = 1
        while not stop.wait(0.1):
            feed(metrics, sink, tick)
            tick += 1

    threads = [threading.Thread(target=server.serve_forever, daemon=True),
               threading.Thread(target=traffic, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield server.server_address[1]
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(timeout=10)


@pytest.fixture
def prometheus_port(tmp_path: Path, worker_endpoint: int) -> Iterator[int]:
    if PROMETHEUS is None:
        pytest.fail("the `prometheus` binary is not installed (apt-get install prometheus)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: streamserve-workers\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker_endpoint}']}}]\n")
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def _finite_values(port: int, expr: str) -> list[float]:
    result = _api(port, "query", query=expr)["result"]
    values = [float(series["value"][1]) for series in result]
    return [v for v in values if math.isfinite(v)]


def test_prometheus_evaluates_every_live_panel(prometheus_port: int) -> None:
    live = [q for q in queries("promql") if q.dashboard == "streamserve-live.json"]
    pending: dict[str, str] = {q.id: promql_for_prometheus(q.text, rate_interval="10s")
                               for q in live}
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        time.sleep(1)
        try:
            pending = {k: e for k, e in pending.items() if not _finite_values(prometheus_port, e)}
        except OSError:  # the server is still starting
            continue
    assert not pending, f"no finite value after 60 s for: {json.dumps(pending, indent=1)}"
    model = variable(load_dashboards()["streamserve-live.json"], "model")
    assert model["definition"] == "label_values(streamserve_requests_total, model)"
    values = _api(prometheus_port, "label/model/values",
                  **{"match[]": "streamserve_requests_total"})
    assert sorted(values) == sorted(MODELS)


# ------------------------------------------------------------------ chDB
def _sql_cases() -> list[tuple[str, str, Query | None]]:
    """(case id, SQL as Grafana sends it, the query) for both $model modes and the variable."""
    window = {"start": NOW - RANGE_BEFORE_S, "end": NOW + RANGE_AFTER_S}
    cases: list[tuple[str, str, Query | None]] = []
    for query in queries("sql"):
        cases.append((f"{query.id}[selected]", grafana_sql(query.text, **window), query))
        cases.append((f"{query.id}[all]", grafana_sql(query.text, all_selected=True, **window),
                      query))
    board = load_dashboards()["streamserve-analytics.json"]
    cases.append(("variable:model", grafana_sql(variable(board, "model")["query"]["rawSql"],
                                                **window), None))
    return cases


SQL_CASES = _sql_cases()


@pytest.fixture(scope="module")
def sql_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("dashboards-chdb")
    sql = {case_id: text for case_id, text, _ in SQL_CASES}
    sql["broken"] = BROKEN_SQL
    (directory / "queries.json").write_text(json.dumps({"now": NOW, "sql": sql}))
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_dashboards", "run-sql", str(directory)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stdout + child.stderr
    results: dict[str, dict[str, Any]] = json.loads((directory / "results.json").read_text())
    return results


def test_sql_runner_reports_failures(sql_results: dict[str, dict[str, Any]]) -> None:
    assert "UNKNOWN_TABLE" in (sql_results["broken"]["error"] or "")


@pytest.mark.parametrize(("case_id", "query"), [(c, q) for c, _, q in SQL_CASES],
                         ids=[c for c, _, _ in SQL_CASES])
def test_sql_panel_runs_on_chdb(case_id: str, query: Query | None,
                                sql_results: dict[str, dict[str, Any]]) -> None:
    result = sql_results[case_id]
    assert result["error"] is None, result["error"]
    assert result["rows"], f"{case_id} returned no rows"
    if query is not None and query.format == 0:
        types = dict(zip(result["columns"], result["types"], strict=True))
        assert types.get("time", "").startswith("DateTime"), types
    if case_id == "variable:model":
        assert sorted(row[0] for row in result["rows"]) == sorted(MODELS)


def test_requests_stat_counts_a_replayed_request_once(
        sql_results: dict[str, dict[str, Any]]) -> None:
    requests = sql_results["streamserve-analytics.json:Requests:A[all]"]
    assert requests["rows"] == [[EXPECTED_ROWS]]  # the replayed block is not counted twice
    (slowest,) = [r for c, r in sql_results.items() if c.startswith(
        "streamserve-analytics.json:Slowest requests:A[selected]")]
    totals = [row[slowest["columns"].index("total_ms")] for row in slowest["rows"]]
    assert totals == sorted(totals, reverse=True) and len(totals) == 50


# ------------------------------------------------------------------ the child process
EXPECTED_ROWS = 2 * 6 * 20  # models x minutes x requests per minute (see _log_rows)


def _log_rows(now: float) -> list[Any]:
    from streams.analytics.sink.request_log import RequestLogRow

    rows = []
    for model, task in (("m1", "generate"), ("m2", "embed")):
        for minute in range(6):
            for i in range(20):
                status = {17: "error", 18: "expired", 19: "rejected"}.get(i, "ok")
                ran = status in {"ok", "error"}
                created = now - 60 * minute - i
                size = 2 ** (i % 4) if ran else 0
                generate = task == "generate" and status == "ok"
                rows.append(RequestLogRow(
                    request_id=f"{model}-{minute}-{i}", model=model, status=status,
                    created_at=created, completed_at=created + 0.05 + i / 100, task=task,
                    error_code={"error": "inference_failed", "expired": "deadline_exceeded",
                                "rejected": "decode_error"}.get(status, ""),
                    partition=i % 4, offset=minute * 20 + i, worker=f"w{i % 2}",
                    batch_size=size, tokens_in=12, tokens_out=16 if generate else 0,
                    kafka_wait_ms=2.0 + i, queue_wait_ms=3.0 * i if ran else 0.0,
                    batch_wait_ms=1.0 if ran else 0.0, inference_ms=10.0 + i if ran else 0.0,
                    total_ms=50.0 + 10 * i, time_to_first_token_ms=20.0 + i if generate else None))
    return rows


def run_sql(directory: Path) -> None:
    """Child process: migrate a fresh chDB, insert the rows (and a replay), run every query."""
    from streams.analytics.migrations import migrate
    from streams.analytics.sink.clickhouse import ClickHouseInserter
    from streams.analytics.sink.request_log import to_block
    from streams.analytics.storage import connect_chdb

    client = connect_chdb(directory / "chdb")
    migrate(client, "streamserve")
    insert = ClickHouseInserter(lambda: client, "`streamserve`.request_log")
    job = json.loads((directory / "queries.json").read_text())
    rows = _log_rows(job["now"])
    assert len(rows) == EXPECTED_ROWS
    insert(to_block(rows))
    insert(to_block(rows[:25]))  # a replay after a rebalance: same requests, a new block
    results: dict[str, dict[str, Any]] = {}
    for case_id, sql in job["sql"].items():
        try:
            result = client.query(sql)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
            results[case_id] = {"error": f"{type(exc).__name__}: {exc}", "rows": []}
            continue
        results[case_id] = {
            "error": None, "columns": list(result.column_names),
            "types": [t.name for t in result.column_types],
            "rows": json.loads(json.dumps(result.result_rows, default=str))}
    (directory / "results.json").write_text(json.dumps(results))
    client.close()


if __name__ == "__main__":
    if sys.argv[1:2] != ["run-sql"] or len(sys.argv) != 3:
        sys.exit("usage: python -m tests.integration.test_dashboards run-sql DIRECTORY")
    run_sql(Path(sys.argv[2]))
