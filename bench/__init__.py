"""Benchmarks: the pipeline measured side by side against the model's own ceiling and the
alternatives. Entry point: `python -m bench [--quick|--smoke]` (or `streamserve bench`)."""
