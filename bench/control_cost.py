"""Stage 9, control-agent cost: the real worker's no-op throughput with the control plane's
faust agent running (the default) and without it, side by side in one run; the two alternate
within every repetition so drifting machine load hits them alike. The agent only reads the
control topic (idle here, as in steady operation), so this is what its consumer, producer and
faust's services cost the hot path."""

from __future__ import annotations

from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.overhead import noop_topics
from bench.procs import config_for
from bench.runners import NOOP
from bench.runs import measure

SETTINGS = (("control_on", True), ("control_off", False))


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.mode.overhead_n
    say(f"stage control: no-op model, {n} pre-loaded records, control agent on vs off")
    topics = noop_topics(ctx, "control", n)
    rates: dict[str, list[float]] = {name: [] for name, _ in SETTINGS}
    for rep in range(ctx.mode.reps):
        for name, control in SETTINGS:
            run_topics = topics.with_new_output()
            run_topics.create()
            config = config_for("ours", NOOP, run_topics, ctx.workdir, f"ctl-{name}-{rep}",
                                batch_size=1000, control=control)
            result = measure(f"control {name} rep {rep + 1}/{ctx.mode.reps}", [config],
                             run_topics, n, ctx.workdir, timeout_s=180.0 + n / 200.0)
            rates[name].append(result.rate)
    per_rep = [ratio(on, off) for on, off in zip(rates["control_on"], rates["control_off"],
                                                 strict=True)]
    on_over_off = med(figure(per_rep))
    say(f"control agent: {med(figure(rates['control_on'])):,.0f} rec/s on, "
        f"{med(figure(rates['control_off'])):,.0f} rec/s off, ratio {on_over_off:.3f}")
    return {"records": n, "rate": {name: figure(v) for name, v in rates.items()},
            "on_over_off": on_over_off, "on_over_off_per_rep": figure(per_rep)}
