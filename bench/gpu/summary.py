"""`python -m bench.gpu.summary RESULTS.json [REPORT.md]`: the device run's report.

It answers the question of the run: does one worker keep the device busy? The no-op worker
(decode, batch, encode, produce, commit; no model) moves at most N records/s; the device alone
computes T_off(B*) MiniLM sequences/s. When N < T_off(B*) the Python worker, not the device, is
the limit, and more workers per device (`streamserve up --gpus all --workers-per-gpu K`) are the
way to fill it; the 1-vs-2-workers figure on one device says how much that buys.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.common import med, ratio
from bench.runners import MINILM, NOOP, SMOLLM


def _f(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _spread(fig: dict[str, Any] | None, digits: int = 1) -> str:
    if not fig or fig.get("median") is None:
        return "n/a"
    return f"{_f(fig['median'], digits)} ({_f(fig['min'], digits)}–{_f(fig['max'], digits)})"


def answer(d: dict[str, Any]) -> list[str]:
    ceiling = d.get("ceiling", {}).get(MINILM, {})
    t_off, b_star = med(ceiling.get("t_off_b_star")), ceiling.get("b_star")
    rates = d.get("overhead", {}).get("rate", {})
    noop, raw = med(rates.get("ours")), med(rates.get("raw"))
    pipe = d.get("pipeline", {}).get(MINILM, {})
    worker, e = med(pipe.get("rate")), pipe.get("efficiency", math.nan)
    lines = [f"- MiniLM alone on the device: T_off(B* = {b_star}) = {_f(t_off)} sequences/s.",
             f"- The no-op worker (the whole hot path, no model): {_f(noop)} records/s "
             f"(a bare aiokafka loop: {_f(raw)}/s).",
             f"- The real worker with MiniLM at B*: {_f(worker)} requests/s, E = {_f(e, 3)}."]
    share = ratio(noop, t_off)
    if math.isnan(share):
        lines.append("- Not answered: a stage is missing (see the stage errors below).")
    elif share < 1.0:
        lines.append(f"- **Yes, one worker is the bottleneck**: computing nothing it moves "
                     f"{share:.0%} of what the device computes alone, so the device idles "
                     f"≥ {1 - share:.0%} of the time behind one Python worker. Run several "
                     "workers per device (`streamserve up --gpus all --workers-per-gpu K`).")
    else:
        lines.append(f"- **No, the device is the limit**: the no-op worker moves {share:.1f}x "
                     "what the device computes, so one worker can keep it busy; E says how "
                     "much of the ceiling it reaches with the model in the loop.")
    return lines + _two_workers(d)


def _two_workers(d: dict[str, Any]) -> list[str]:
    lines = []
    for model in (MINILM, NOOP):
        s = d.get("scaling", {}).get(model)
        if isinstance(s, dict) and "speedup" in s:
            lines.append(f"- 2 workers on one device, {model}: {_f(med(s['one_worker']))} -> "
                         f"{_f(med(s['two_workers']))} requests/s (x{_f(s['speedup'], 2)}).")
    return lines


def _tables(d: dict[str, Any]) -> list[str]:
    out: list[str] = []
    minilm = d.get("ceiling", {}).get(MINILM)
    if minilm:
        out += ["", "## MiniLM alone: T_off(B)", "", "| B | sequences/s | ms per batch |",
                "|---|---|---|"]
        out += [f"| {b} | {_spread(v['per_s'])} | {_spread(v['batch_ms'])} |"
                for b, v in sorted(minilm["curve"].items(), key=lambda kv: int(kv[0]))]
    smol = d.get("ceiling", {}).get(SMOLLM)
    if smol:
        out += ["", f"## SmolLM2 alone, {smol.get('engine')} engine, "
                f"{smol.get('new_tokens')} new tokens", "",
                "| B | requests/s | tokens/s | s per batch |", "|---|---|---|---|"]
        out += [f"| {b} | {_spread(v['per_s'], 2)} | {_spread(v['tokens_per_s'])} | "
                f"{_f(med(v['batch_ms']) / 1000, 2)} |"
                for b, v in sorted(smol["curve"].items(), key=lambda kv: int(kv[0]))]
    pipe = d.get("pipeline", {})
    if pipe:
        out += ["", "## Pipeline efficiency (the real worker through Kafka)", "",
                "| model | B* | requests/s | T_off(B*) | E |", "|---|---|---|---|---|"]
        out += [f"| {m} | {p.get('b_star')} | {_spread(p.get('rate'))} | "
                f"{_f(p.get('t_off_b_star', math.nan))} | {_f(p.get('efficiency', math.nan), 3)} |"
                for m, p in pipe.items() if isinstance(p, dict) and "rate" in p]
    return out


def _plan(path: Path) -> list[str]:
    from streams.analytics.capacity.plan import Scaling, scaling_lines
    from streams.analytics.capacity.sources import from_bench
    from streams.errors import ConfigError

    try:
        scaling = Scaling.of(from_bench(path, MINILM))
    except (ConfigError, ValueError) as exc:
        return [f"(no scaling fit: {exc})"]
    return ["", "## Scaling fit (`streamserve plan --bench` on this run, MiniLM)", "", "```",
            *scaling_lines(scaling), "```"]


def markdown(d: dict[str, Any], path: Path) -> str:
    meta = d["meta"]
    machine, device = meta["machine"], meta.get("device", {})
    name = device.get("name") or device.get("requested", "?")
    lines = [f"# Device bench {meta['stamp']}: does one worker keep {name} busy?", "",
             f"Device: {name}" + (f", {device.get('memory_gib')} GiB, bf16 "
                                  f"{device.get('bf16')}" if device.get("name") else "")
             + f"; {machine['cores']} cores, {machine['memory_gib']} GiB; Python "
             f"{machine['python']}, torch {machine['versions'].get('torch')}, transformers "
             f"{machine['versions'].get('transformers')}; broker {meta.get('broker')}; "
             f"request-log sink off. Mode {meta['mode']}, {meta['reps']} rep(s), wall "
             f"{meta.get('wall_s')} s.",
             "", "Models: the real architectures and tokenizers with random weights "
             "(bench/gpu/models.py): the same work per batch; generated text is noise.", ""]
    if not meta.get("measurement", True):
        lines += ["**Smoke run: tiny counts, not a measurement.**", ""]
    if meta.get("interrupted"):
        lines += ["**Interrupted (time budget or signal): stages missing below were not "
                  "measured.**", ""]
    lines += ["## The answer", "", *answer(d), *_tables(d), *_plan(path)]
    seconds = [f"{stage} {d[stage]['stage_seconds']:.0f} s" for stage in meta.get("stages", [])
               if isinstance(d.get(stage), dict) and "stage_seconds" in d[stage]]
    if seconds:  # to size the next run's modes and budget
        lines += ["", "Stage wall times: " + ", ".join(seconds) + "."]
    failed = [f"- {stage}: {d[stage]['error']}" for stage in meta.get("stages", [])
              if isinstance(d.get(stage), dict) and "error" in d[stage]]
    if failed:
        lines += ["", "## Stage errors", "", *failed]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0])
    data = json.loads(path.read_text(encoding="utf-8"))
    text = markdown(data, path)
    if len(args) > 1:
        Path(args[1]).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
