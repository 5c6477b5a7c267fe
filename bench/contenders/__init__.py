"""Processes measured by the benchmark, each started by `bench.procs` with a `ContenderConfig`:
`ours` (the real worker), `raw` (a hand-written aiokafka loop), `faust_agent` (a per-message
faust agent) and `quix_app` (a Quix Streams application, run from its own virtual env)."""
