"""deploy/: the Prometheus config and alert rules and the Grafana dashboard name only metrics smsq exports.

The exported names are read from the real registries (the counters of every process, and the gauges of
`smsq metrics` computed on a migrated database and Redis db 15), not from a list kept by hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.cli.support import cli_settings
from tests.conftest import ROOT, redis_db_for_session
from worker.metrics import counters  # noqa: F401 - registers every counter and histogram
from worker.metrics.server import DatabaseCollector

DEPLOY = ROOT / "deploy"
OPS_REDIS_URL = "redis://127.0.0.1:6379/15"
#: Synthesised by Prometheus itself for every target.
PROMETHEUS_OWN = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "inf", "nan"}  # fmt: skip


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from redis_db_for_session(OPS_REDIS_URL)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, label matchers, ranges, grouping removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(0), text[match.end() :].lstrip()
        if rest.startswith("(") or word in KEYWORDS:
            continue  # a function or an aggregation
        names.add(word)
    return names


@pytest.fixture
def exported(runtime_factory, sandbox, sqlite_url, redis_client) -> set[str]:
    rt = runtime_factory(cli_settings(sandbox, sqlite_url, broker_url=OPS_REDIS_URL))
    redis_client.hset("smsq:beat:last_sweep", "smsq-release", "1")
    names: set[str] = set()
    families: list[Any] = [*REGISTRY.collect(), *DatabaseCollector(rt).collect()]
    for family in families:
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        elif family.type == "counter":
            names.add(f"{family.name}_total")
        else:
            names.add(family.name)
    return {name for name in names if name.startswith("smsq_")}


def rules() -> list[dict[str, Any]]:
    paths = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
    assert paths
    return [
        rule
        for path in paths
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DEPLOY / "grafana" / "dashboards" / "smsq.json").read_text())
    return loaded


def test_the_promql_reader_finds_the_metric_names():
    assert metric_names('sum by (le, kind) (rate(smsq_a_bucket{code!~"2.."}[5m])) / on(x) smsq_b > 0') == {
        "smsq_a_bucket", "smsq_b"}  # fmt: skip
    assert metric_names('time() - max(smsq_c) > 120 or absent(up{job="w"} == 1)') == {"smsq_c", "up"}


def test_alert_rules_cover_what_on_call_needs_and_name_only_exported_metrics(exported):
    by_name = {rule["alert"]: rule for rule in rules()}
    assert {"SmsqBacklogOld", "SmsqProviderThrottled", "SmsqConnectionPausedForCredits", "SmsqWorkersDown",
            "SmsqBeatSilent", "SmsqJobsStuckSubmitting", "SmsqUnknownOutcomesRising"} <= set(by_name)  # fmt: skip
    for name, rule in by_name.items():
        used = metric_names(rule["expr"])
        assert used, name
        assert used - exported - PROMETHEUS_OWN == set(), name
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in {"warning", "critical"}
    assert 'up{job="smsq-worker"}' in by_name["SmsqWorkersDown"]["expr"]


def test_the_dashboard_has_the_panels_on_call_opens_first_and_names_only_exported_metrics(exported):
    board = dashboard()
    titles = [panel["title"] for panel in board["panels"]]
    for wanted in ("Recipients per minute by outcome", "Provider calls vs limit", "Backlog: open jobs by state",
                   "Backlog age", "Latency: enqueue to submitted (p50, p99)",
                   "Latency: submitted to final (p50, p99)", "Provider request seconds (p99) by operation"):  # fmt: skip
        assert wanted in titles
    used: set[str] = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names - exported == set(), (panel["title"], target["expr"])
            used |= names
    # every histogram and the outcome, call and throttle counters appear on the dashboard
    for histogram in ("provider_request_seconds", "enqueue_to_submitted_seconds", "submitted_to_final_seconds",
                      "limiter_wait_seconds"):  # fmt: skip
        assert f"smsq_{histogram}_bucket" in used
    assert {"smsq_recipient_outcomes_total", "smsq_provider_calls_total", "smsq_provider_throttled_total",
            "smsq_connection_limit_calls", "smsq_backlog_age_seconds", "smsq_jobs"} <= used  # fmt: skip


def test_compose_provisions_the_dashboard_and_prometheus_scrapes_every_smsq_process():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/smsq.yml").read_text())
    assert datasource["datasources"][0]["uid"] == dashboard()["panels"][0]["datasource"]["uid"]
    assert (
        "./deploy/grafana/dashboards:" + provider["providers"][0]["options"]["path"] + ":ro"
        in compose["grafana"]["volumes"]
    )
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in compose["grafana"]["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["prometheus"]["volumes"]

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["smsq-metrics"]["static_configs"][0]["targets"] == ["metrics:9464"]
    assert compose["metrics"]["command"][-1] == "9464"
    worker_sd = jobs["smsq-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"]
    assert str(worker_sd["port"]) == compose["worker"]["environment"]["SMSQ_METRICS_PORT"]
    assert compose["worker"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] in compose["worker"]["tmpfs"][0]
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
