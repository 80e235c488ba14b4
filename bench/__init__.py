"""Benchmarks of the relay: ``python -m bench ingest|e2e|latency|replicas|routing|memory|all``.

Each prints Markdown tables and writes its figures as JSON to ``bench/results/``. See
docs/benchmarks.md for what each measures, the targets and the latest results.
"""
