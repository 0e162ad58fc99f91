"""Benchmarks: ``python -m prodmatch.bench`` (study-size search and encoding table), ``--scale`` (index
backends at scale), ``--throughput`` (image-loading throughput, where that module is present).

Modules: :mod:`.common` (shared sizes, data, timing), :mod:`.search`, :mod:`.encoding`, :mod:`.scale`.
"""
