"""Autoscaling: a pure decision (decision.py, estimate.py), its signals (lag.py, scrape.py,
history.py, signals.py) and the local actuator behind `streamserve up` (procs.py,
supervisor.py). Importing this package imports nothing else: the pure parts stay pure.
"""
