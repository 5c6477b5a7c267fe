"""`streamserve plan`: capacity from measured throughput at N = 1, 2, … workers.

laws.py fits Amdahl, Gustafson and Gunther's USL to the measurements (and Karp–Flatt's serial
fraction per N); sources.py reads them from a bench results JSON or the request log; plan.py
predicts and answers "how many workers (GPUs) for R requests/s"; report.py does the I/O.
Importing this package imports nothing else.
"""
