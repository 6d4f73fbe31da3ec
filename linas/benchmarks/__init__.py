"""Cheap evaluators for tests and fast comparisons of strategies.

- ``synthetic_mbv3``: a NAS-like accuracy/latency trade-off over the OFA MobileNetV3 space.
- ``pymoo_problem``: pymoo's ZDT/DTLZ test problems over a grid space (``grid``).
"""
