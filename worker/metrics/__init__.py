"""Prometheus metrics: the counters the worker updates (`counters`) and the exporter (`server`)."""
