"""merino: the library behind merino-workflow (MeRino, AAAI 2025).

Modules, one paper concept each: ``space`` (architectures, search space, Algorithm 2),
``cost`` (params, FLOPs, memory; budgets), ``latency`` (the paper's latency protocol, per-device
latency tables that price latency budgets), ``entropy`` (Eqs. 7, 11-15, lookup table), ``search``
(Algorithm 1, exact solver), ``paper`` (tables and figures beside the paper's numbers),
``checks`` (config checks), ``provenance`` (what every result file records).
"""
