"""The device bench: `bench/gpu/run.sh` (see README.md) and the `--device` stages of `python -m
bench` — the model ceiling up to B = 1024, SmolLM2 on the continuous engine, pipeline
efficiency, the no-op worker beside the ceiling, 1 vs 2 workers on one device."""
