"""How much the device bench measures: `DEVICE` on an accelerator (a few minutes on one H200,
leaving time for a rerun within 15 minutes of device time), `DEVICE_SMOKE` with --smoke (tiny,
so that `--device cpu --smoke` runs every device stage on a 2-core machine)."""

from __future__ import annotations

from bench.modes import Mode

DEVICE_STAGES = ("ceiling", "pipeline", "overhead", "scaling")

DEVICE = Mode("device", reps=3, minilm_batches=(1, 8, 32, 128, 256, 512, 1024),
              smollm_batches=(1, 8, 32, 64), ceiling_min_s=0.5, new_tokens=32,
              pipeline_minilm_n=60_000, pipeline_smollm_batches=2, overhead_n=100_000,
              naive_n=0, latency_s=0.0, latency_loads=(), scaling_noop_n=100_000,
              scaling_minilm_n=60_000, sink_n=0, stages=DEVICE_STAGES, raw_pipelined=False)

DEVICE_SMOKE = Mode("device-smoke", reps=1, minilm_batches=(1, 4), smollm_batches=(1, 2),
                    ceiling_min_s=0.1, new_tokens=4, pipeline_minilm_n=200,
                    pipeline_smollm_batches=1, overhead_n=1000, naive_n=0, latency_s=0.0,
                    latency_loads=(), scaling_noop_n=1000, scaling_minilm_n=100, sink_n=0,
                    stages=DEVICE_STAGES, raw_pipelined=False)


def device_mode(smoke: bool) -> Mode:
    return DEVICE_SMOKE if smoke else DEVICE
