"""The fleet's control plane: the control topic's records (`state`), the faust agent every
worker runs to apply them (`agent`), and the operator's side (`commands`, `fleet`).

May import: faust (only here and in `streams/worker/app.py`), aiokafka, `kafka`, `wire`,
`protocol`, `models.registry`.
Must not import: the worker (it hands the agent its hot-reload
path as a `ControlApplier`), clickhouse, torch.
"""
