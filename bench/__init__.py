"""Benchmarks for smsq: `python -m bench.throughput [--quick]` writes docs/benchmarks.md.

`bench.throughput` runs the measurements, `bench.workers` starts and stops real `celery` worker
processes (and reads their peak memory), `bench.report` renders the figures as Markdown.
"""
