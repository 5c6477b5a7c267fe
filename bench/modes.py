"""How much each mode measures. `full` is the report; `quick` stays under 10 minutes on
2 cores; `smoke` only keeps the harness from rotting (tiny counts, not a measurement)."""

from __future__ import annotations

from dataclasses import dataclass

ALL_STAGES = ("ceiling", "pipeline", "overhead", "naive", "latency", "scaling", "sink",
              "delivery", "tracing", "control")


@dataclass(frozen=True)
class Mode:
    name: str
    reps: int
    minilm_batches: tuple[int, ...]
    smollm_batches: tuple[int, ...]  # empty: SmolLM2 is not measured
    ceiling_min_s: float  # timed seconds per MiniLM ceiling repetition (at least)
    new_tokens: int  # generated tokens per SmolLM2 request
    pipeline_minilm_n: int
    pipeline_smollm_batches: int  # requests per rep = this many batches of B*
    overhead_n: int
    naive_n: int
    latency_s: float  # measured seconds per (load, rep)
    latency_loads: tuple[float, ...]
    scaling_noop_n: int
    scaling_minilm_n: int
    sink_n: int
    delivery_noop_n: int = 0  # exactly-once vs at-least-once: records per no-op run (0: skip)
    delivery_minilm_n: int = 0
    stages: tuple[str, ...] = ALL_STAGES
    raw_pipelined: bool = True  # also race the pipelined raw loop in the overhead stage

    @property
    def is_measurement(self) -> bool:
        return not self.name.endswith("smoke")


FULL = Mode("full", reps=3, minilm_batches=(1, 2, 4, 8, 16, 32, 64),
            smollm_batches=(1, 2, 4, 8, 16), ceiling_min_s=2.0, new_tokens=32,
            pipeline_minilm_n=6000, pipeline_smollm_batches=4, overhead_n=50_000,
            naive_n=1500, latency_s=15.0, latency_loads=(0.5, 0.7, 0.9),
            scaling_noop_n=50_000, scaling_minilm_n=4000, sink_n=50_000,
            delivery_noop_n=50_000, delivery_minilm_n=4000)

QUICK = Mode("quick", reps=3, minilm_batches=(1, 8, 32), smollm_batches=(1, 4, 8),
             ceiling_min_s=0.8, new_tokens=32, pipeline_minilm_n=800,
             pipeline_smollm_batches=2, overhead_n=20_000, naive_n=120, latency_s=3.0,
             latency_loads=(0.5, 0.7, 0.9), scaling_noop_n=20_000, scaling_minilm_n=300,
             sink_n=10_000, raw_pipelined=False, delivery_noop_n=20_000,
             delivery_minilm_n=600)

SMOKE = Mode("smoke", reps=1, minilm_batches=(1,), smollm_batches=(), ceiling_min_s=0.1,
             new_tokens=4, pipeline_minilm_n=0, pipeline_smollm_batches=0, overhead_n=1000,
             naive_n=0, latency_s=0.0, latency_loads=(), scaling_noop_n=0, scaling_minilm_n=0,
             sink_n=0, stages=("ceiling", "overhead", "delivery", "tracing"),
             delivery_noop_n=500)

MODES = {mode.name: mode for mode in (FULL, QUICK, SMOKE)}
