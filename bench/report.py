"""The report: the JSON of every figure, a markdown summary table and the plots."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from bench.common import med
from bench.runners import MINILM, NOOP, SMOLLM

Row = tuple[str, str, Any, str, str]  # measurement, unit, figure or number, goal, result


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def _cells(value: Any, digits: int) -> list[str]:
    if isinstance(value, dict) and "median" in value:
        return [_num(value["median"], digits), _num(value["min"], digits),
                _num(value["max"], digits)]
    return [_num(value, digits), "", ""]


def _verdict(passed: Any) -> str:
    return "" if passed is None else ("**pass**" if passed else "**FAIL**")


def _summary_rows(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ceiling, pipeline = d.get("ceiling", {}), d.get("pipeline", {})
    if MINILM in ceiling:
        c = ceiling[MINILM]
        rows.append((f"1. MiniLM ceiling T_off(B*), B*={c['b_star']}", "seq/s",
                     c["t_off_b_star"], "", ""))
    if SMOLLM in ceiling:
        c = ceiling[SMOLLM]
        rows.append((f"1. SmolLM2 ceiling T_off(B*), B*={c['b_star']}, {c['new_tokens']} tok, "
                     f"{c.get('engine', 'static')} engine", "req/s", c["t_off_b_star"], "", ""))
        rows.append(("1. SmolLM2 ceiling at B*", "tok/s", c["tokens_per_s_b_star"], "", ""))
    for model, label in ((MINILM, "MiniLM"), (SMOLLM, "SmolLM2")):
        if model in pipeline:
            p = pipeline[model]
            rows.append((f"2. {label} through Kafka (worker, B={p['b_star']})", "req/s",
                         p["rate"], "", ""))
            if "efficiency_paired" in p:
                rows.append((f"2. {label} T_off(B*) alone, mean of before and after each "
                             "burst", "seq/s", p["t_off_paired"], "", ""))
                if "t_off_before" in p:
                    rows.append((f"2. {label} T_off(B*) alone before / after each burst",
                                 "seq/s", f"{med(p['t_off_before']):,.1f} / "
                                 f"{med(p['t_off_after']):,.1f}", "", ""))
                rows.append((f"2. {label} E = burst rate / T_off next to it (per rep)", "ratio",
                             p["efficiency_paired"], p.get("goal", "report"),
                             _verdict(p.get("pass"))))
                rows.append((f"2. {label} E against stage 1's T_off(B*)", "ratio",
                             p["efficiency_stage1"], "reference", ""))
            else:
                rows.append((f"2. {label} pipeline efficiency E", "ratio", p["efficiency"],
                             p.get("goal", "report"), _verdict(p.get("pass"))))
            if "model_duty" in p:
                rows.append((f"2. {label}: share of time the model computes in the worker",
                             "ratio", p["model_duty"], "", ""))
                rows.append((f"2. {label}: batch time in the worker / alone (mean batch "
                             f"{med(p['mean_batch_size']):.1f})", "x",
                             p.get("model_slowdown_in_worker"), "", ""))
            if "model_slowdown_vs_paired" in p:
                rows.append((f"2. {label}: batch time in the worker / alone next to it "
                             "(per rep)", "x", p["model_slowdown_vs_paired"], "", ""))
    if "overhead" in d and "rate" in d["overhead"]:
        o = d["overhead"]
        rows.append(("3. no-op: ours (real worker)", "req/s", o["rate"]["ours"],
                     ">= 20,000", _verdict(o["pass_rate"])))
        rows.append(("3. no-op: raw aiokafka loop (serial)", "req/s", o["rate"]["raw"], "", ""))
        if "raw_pipelined" in o["rate"]:
            rows.append(("3. no-op: raw aiokafka loop (pipelined commits)", "req/s",
                         o["rate"]["raw_pipelined"], "", ""))
        rows.append(("3. ours / raw (serial), per repetition", "ratio",
                     o["ours_over_raw_per_rep"], ">= 0.5", _verdict(o["pass_ratio"])))
        rows.append(("3. ours / raw (serial), ratio of the medians", "ratio",
                     o.get("ours_over_raw_of_medians"), "reference", ""))
        if "raw_pipelined" in o["rate"]:
            rows.append(("3. ours / raw (pipelined)", "ratio", o["ours_over_raw_pipelined"], "",
                         ""))
    naive = d.get("naive", {})
    for kind in ("faust_agent", "quix_app"):
        entry = naive.get(kind, {})
        if "rate" in entry:
            rows.append((f"4. {entry['label']} (MiniLM, 1 call/request)", "req/s",
                         entry["rate"], "", ""))
            rows.append((f"4. our speed-up over the {entry['label']}", "x",
                         entry["our_speedup"], "", ""))
        elif "skipped" in entry:
            rows.append((f"4. {kind}", "", "skipped", "", entry["skipped"]))
    latency = d.get("latency", {})
    if "capacity" in latency:
        cap = (f" (max_batch_size {latency['max_batch_size']}: "
               f"{latency['max_batch_size_why']})" if "max_batch_size" in latency else "")
        rows.append((f"5. MiniLM capacity re-measured in the latency worker{cap}", "req/s",
                     latency["capacity"], "", ""))
    for key, load in sorted(latency.get("loads", {}).items()):
        pct = f"{float(key):.0%}"
        rows.append((f"5. latency at {pct} load: p50 e2e", "ms", load["p50_ms"], "", ""))
        rows.append((f"5. latency at {pct} load: p99 e2e", "ms", load["p99_ms"], "", ""))
        rows.append((f"5. latency at {pct} load: p99 overhead beyond inference", "ms",
                     load["p99_overhead_ms"], "", ""))
        if "batch_wait_p99_ms" in load:
            rows.append((f"5. latency at {pct} load: p99 wait for the batch to form / p99 "
                         "batch time", "ms", f"{med(load['batch_wait_p99_ms']):,.1f} / "
                         f"{med(load['inference_p99_ms']):,.1f}", "", ""))
    if "goal" in latency:
        g = latency["goal"]
        ceiling_bound = g.get("bound_from_ceiling_ms")
        rows.append((f"5. p99 bound at 70% = {latency['max_wait_ms']:.0f} ms max_wait + 2 x "
                     f"{g['model_batch_ms']:.1f} ms batch time (mean batch "
                     f"{g['batch_size_formed']:.1f})", "ms", g["bound_ms"],
                     f"p99 {g['p99_ms']:.1f} <= {g['bound_ms']:.1f}", _verdict(g["pass"])))
        if ceiling_bound:
            rows.append(("5. same bound with the ceiling's batch time for that batch size", "ms",
                         ceiling_bound, "reference", ""))
        if "ideal" in g:
            ideal = g["ideal"]
            rows.append(("5. ideal worker at 70% (same policy and arrivals, the ceiling's batch "
                         "times, no Kafka; bench/queue_model.py): p99 / its bound", "ms",
                         f"{ideal['p99_ms']:,.1f} / {ideal['bound_ms']:,.1f}", "reference",
                         "misses too" if ideal["p99_ms"] > ideal["bound_ms"] else "meets it"))
    scaling = d.get("scaling", {})
    for model in (NOOP, MINILM):
        if model in scaling:
            s = scaling[model]
            rows.append((f"6. {model}: 1 worker", "req/s", s["one_worker"], "", ""))
            rows.append((f"6. {model}: 2 workers", "req/s", s["two_workers"], "", ""))
            rows.append((f"6. {model}: 2 workers / 1 worker", "x", s["speedup"], "",
                         "2 cores: contention"))
    broker = [f"{stage} {d[stage]['broker_cores']:.2f}" for stage in d.get("meta", {}).get(
        "stages", []) if isinstance(d.get(stage), dict) and "broker_cores" in d[stage]]
    if broker:
        rows.append(("0. Kafka broker's CPU during each stage (cores, of the machine's "
                     f"{d['meta']['machine']['cores']})", "cores", ", ".join(broker), "", ""))
    sink = d.get("sink", {})
    if "with" in sink:
        rows.append(("6. no-op worker without ClickHouse sink", "req/s", sink["without"], "", ""))
        rows.append(("6. no-op worker with ClickHouse sink (chDB)", "req/s", sink["with"], "",
                     ""))
        rows.append(("6. sink cost per request", "µs", sink["cost_us_per_request"], "", ""))
    rows += _delivery_rows(d.get("delivery", {}))
    rows += _tracing_rows(d.get("tracing", {}))
    return rows


def _tracing_rows(tr: dict[str, Any]) -> list[Row]:
    if "off_over_bypass" not in tr:
        return []
    per_record = tr["us_per_record"]
    return [
        ("9. hot path per record: bypass / off / on", "µs",
         " / ".join(f"{med(per_record[arm]):,.1f}" for arm in ("bypass", "off", "on")), "", ""),
        ("9. tracing off / facade bypassed (per round)", "ratio", tr["off_over_bypass"],
         "≈ 1 (report)", ""),
        ("9. tracing on (in-memory exporter) / bypassed (per round)", "ratio",
         tr["on_over_bypass"], "report", ""),
    ]


def _delivery_rows(dl: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for model in (NOOP, MINILM):
        if model in dl:
            t = dl[model]
            rows.append((f"8. {model}: at-least-once / exactly-once", "req/s",
                         f"{med(t['rate']['at_least_once']):,.0f} / "
                         f"{med(t['rate']['exactly_once']):,.0f}", "", ""))
            rows.append((f"8. {model}: exactly-once / at-least-once (per rep)", "ratio",
                         t["eos_over_alo_per_rep"], ">= 0.9",
                         _verdict(t["eos_over_alo"] >= 0.9)))
    if "latency" in dl:
        lat = dl["latency"]
        alo, eos = lat["at_least_once"], lat["exactly_once"]
        rows.append(("8. MiniLM at 70%: p50 / p99 at-least-once", "ms",
                     f"{alo['p50_ms']:,.1f} / {alo['p99_ms']:,.1f}", "", ""))
        rows.append(("8. MiniLM at 70%: p50 / p99 exactly-once", "ms",
                     f"{eos['p50_ms']:,.1f} / {eos['p99_ms']:,.1f}",
                     f"p99 <= {lat['p99_bound_ms']:,.1f}", _verdict(lat["pass_latency"])))
        hold = eos.get("holdback") or {}
        rows.append(("8. exactly-once transactions per second; hold-back mean / p99 bucket",
                     "", f"{eos.get('transactions_per_s') or 0:,.1f}; "
                     f"{_num(hold.get('mean_ms'))} / {_num(hold.get('p99_bucket_ms'))} ms",
                     "", ""))
    return rows


def markdown(d: dict[str, Any], plots: list[str]) -> str:
    meta = d["meta"]
    m = meta["machine"]
    lines = [
        f"# streamserve benchmark {meta['stamp']} ({meta['mode']} mode)",
        "",
        f"Machine: {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, torch threads "
        f"{m['torch_threads']}, OMP_WAIT_POLICY {meta.get('omp_wait_policy')}, load average "
        f"at start {_num(m['load_avg_at_start'][0], 2)}, at end "
        f"{_num((m.get('load_avg_at_end') or [math.nan])[0], 2)}, "
        f"Kafka {m['kafka']}, git {m['git']}. Wall time {meta['wall_s']:.0f} s.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items() if v)}.",
        "",
        "Every figure is the median of the repetitions (min and max kept) measured side by side "
        "in this run; throughput comes from the broker's append times of the results after the "
        "first 10% (warm-up). The broker, the workers and the benchmark share the machine.",
    ]
    if not meta["measurement"]:
        lines += ["", "**Smoke run: tiny counts, not a measurement.**"]
    lines += ["", "| Measurement | Unit | Median | Min | Max | Goal | Result |",
              "|---|---|---:|---:|---:|---|---|"]
    for name, unit, value, goal, verdict in _summary_rows(d):
        digits = 3 if unit in ("ratio",) else 2 if unit == "x" else 1
        cells = _cells(value, digits)
        lines.append(f"| {name} | {unit} | {' | '.join(cells)} | {goal} | {verdict} |")
    lines += _ceiling_tables(d)
    errors = {k: v["error"] for k, v in d.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["", "## Stages that failed", ""]
        lines += [f"- {stage}: `{error}`" for stage, error in errors.items()]
    notes = d.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def _ceiling_tables(d: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for model, unit in ((MINILM, "seq/s"), (SMOLLM, "req/s")):
        c = d.get("ceiling", {}).get(model)
        if not c:
            continue
        lines += ["", f"### {model} alone: T_off(B)", "",
                  f"| B | {unit} (median) | min | max | ms/batch |"
                  + (" tok/s |" if model == SMOLLM else ""),
                  "|---:|---:|---:|---:|---:|" + ("---:|" if model == SMOLLM else "")]
        for size in sorted(c["curve"], key=int):
            point = c["curve"][size]
            cells = [*_cells(point["per_s"], 1), _num(point["batch_ms"]["median"], 1)]
            if model == SMOLLM:
                cells.append(_num(point["tokens_per_s"]["median"], 1))
            lines.append(f"| {size} | {' | '.join(cells)} |")
    return lines


def write(d: dict[str, Any], out_dir: Path, plots: list[Path]) -> tuple[Path, Path]:
    stamp = d["meta"]["stamp"]
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stamp}.json"
    md_path = out_dir / f"{stamp}.md"
    json_path.write_text(json.dumps(_clean(d), indent=2, default=_jsonable) + "\n")
    md_path.write_text(markdown(d, [str(p) for p in plots]))
    shutil.copyfile(md_path, out_dir / "latest.md")
    return json_path, md_path


def _clean(value: Any) -> Any:
    """NaN (not measured) becomes null: strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | tuple):
        return list(value)
    return repr(value)
