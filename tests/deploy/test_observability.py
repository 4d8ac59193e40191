"""The dashboards and alert rules of deploy/ (k8s/observability, compose/observability.yml) are
well-formed, render, and speak only of metrics the services really export: every metric name in
every expression is checked against the exposition (`/metrics`) of every service's process.
tests/e2e/test_tracing.py checks the same names against the /metrics of a running system."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from services.common.settings import Settings
from services.registry import SERVICES
from tests.deploy.conftest import DEPLOY, kubectl, service_host
from tests.deploy.test_compose import compose, schema_errors

OBSERVABILITY = DEPLOY / "k8s" / "observability"
DASHBOARDS = sorted((OBSERVABILITY / "dashboards").glob("*.json"))
RULES = OBSERVABILITY / "rules.yaml"
PROMETHEUS_RULE = OBSERVABILITY / "prometheusrule.yaml"
COMPOSE_OBSERVABILITY = DEPLOY / "compose" / "observability.yml"
SCHEMAS = Path(__file__).parent / "schemas"

# PromQL words that are not metric names.
_KEYWORDS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)
_BUILTIN = frozenset({"up", "scrape_duration_seconds"})  # added by Prometheus to every target


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords,
    label names (in `{...}`, `by (...)`, `on (...)` ...), durations or strings."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in _KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, step) (rate(vaksin_x_bucket{a="b c"}[5m]))) '
        "/ on (job) group_left clamp_min(sum(rate(other_total[$__rate_interval])), 1) > 0.5 "
        "unless max without (pod) (g) == 0"
    )
    assert metric_names(expr) == {"vaksin_x_bucket", "other_total", "g"}


def series_names(exposition: str) -> set[str]:
    """Every series name a /metrics text may carry, from its `# TYPE` lines (a family is typed
    even before its first sample, e.g. a counter whose labels were never used)."""
    names = set()
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created", ""),
        "gauge": ("",),
        "untyped": ("",),
        "info": ("_info",),
    }
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in suffixes.get(kind, ("",)))
    return names


@functools.cache
def exported() -> frozenset[str]:
    """What the services' processes serve on /metrics: every host built (as `vaksin service`
    does, which declares its brokers' middlewares and imports its metrics), then the registry
    rendered as /metrics renders it."""
    settings = Settings(nats_url="nats://127.0.0.1:1", database_url="postgresql://x@127.0.0.1/x")
    for name in SERVICES:
        service_host(name, settings)
    return frozenset(series_names(generate_latest(REGISTRY).decode()))


def dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def unknown_metrics(expressions: list[tuple[str, str]]) -> list[str]:
    known = exported() | _BUILTIN
    return [
        f"{where}: {name}"
        for where, expr in expressions
        for name in sorted(metric_names(expr) - known)
    ]


def test_every_dashboard_expression_names_an_exported_metric() -> None:
    assert len(dashboard_expressions()) > 20
    assert unknown_metrics(dashboard_expressions()) == []


def test_every_alert_expression_names_an_exported_metric() -> None:
    expressions = [(rule["alert"], rule["expr"]) for rule in rules()]
    assert unknown_metrics(expressions) == []


def test_the_check_catches_a_misspelled_metric() -> None:
    assert unknown_metrics([("x", "sum(rate(vaksin_dialog_turn_total[5m]))")]) == [
        "x: vaksin_dialog_turn_total"
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_follow_grafanas_dashboard_model(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    schema = json.loads((SCHEMAS / "grafana-dashboard.json").read_text())
    jsonschema.validate(dashboard, schema)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_the_dashboard_schema_catches_a_misspelled_field() -> None:
    dashboard = json.loads(DASHBOARDS[0].read_text())
    dashboard["panels"][1]["gridpos"] = dashboard["panels"][1].pop("gridPos")
    schema = json.loads((SCHEMAS / "grafana-dashboard.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dashboard, schema)


def test_alerts_answer_the_on_call_questions() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert len(by_name) == len(rules())
    assert {
        "VaksinNoTurnsWhileMessagesArrive",
        "VaksinConsumerLagOverAMinute",
        "VaksinDeadLettersGrowing",
        "VaksinGraphApi5xx",
        "VaksinGraphApiThrottled",
        "VaksinWebhook5xx",
        "VaksinPostgresUnreachable",
        "VaksinNatsUnreachable",
    } <= set(by_name)
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["expr"].count("(") == rule["expr"].count(")"), name


def test_the_prometheus_rule_holds_the_same_groups_and_is_valid() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    jsonschema.validate(
        rule, json.loads((SCHEMAS / "prometheusrule.monitoring.coreos.com_v1.json").read_text())
    )
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_kubernetes_objects_render_for_the_operator_and_the_grafana_sidecar() -> None:
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(OBSERVABILITY)], check=True, capture_output=True, text=True
    ).stdout
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(rendered)}
    assert set(objects) == {
        ("ConfigMap", "vaksin-grafana-dashboards"),
        ("PrometheusRule", "vaksin"),
        ("PodMonitor", "vaksin"),
    }
    for obj in objects.values():
        assert obj["metadata"]["namespace"] == "vaksin"
    config_map = objects[("ConfigMap", "vaksin-grafana-dashboards")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert {json.loads(v)["uid"] for v in config_map["data"].values()} == {
        json.loads(p.read_text())["uid"] for p in DASHBOARDS
    }
    monitor = objects[("PodMonitor", "vaksin")]
    jsonschema.validate(
        monitor, json.loads((SCHEMAS / "podmonitor.monitoring.coreos.com_v1.json").read_text())
    )
    # It selects our pods (every workload of the base carries this label) on their /metrics port.
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/part-of": "vaksin"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"


def test_the_compose_observability_file_adds_to_the_harness() -> None:
    extra = yaml.safe_load(COMPOSE_OBSERVABILITY.read_text())
    merged = compose()
    for name, service in extra["services"].items():
        base = merged["services"].setdefault(name, {})
        for key, value in service.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
    merged.update({k: v for k, v in extra.items() if k != "services"})
    assert schema_errors(merged) == []
    in_harness = set(SERVICES) & set(compose()["services"])
    assert in_harness <= set(extra["services"])  # every service traced to Jaeger
    for name in in_harness:
        env = merged["services"][name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["NATS_URL"]  # the harness's own environment is kept
    prometheus = yaml.safe_load(
        (DEPLOY / "compose" / "observability" / "prometheus.yml").read_text()
    )
    [job] = prometheus["scrape_configs"]
    assert {t.split(":")[0] for t in job["static_configs"][0]["targets"]} == in_harness
    for service in ("prometheus", "grafana"):
        for volume in extra["services"][service]["volumes"]:
            source = volume.split(":")[0]
            assert (COMPOSE_OBSERVABILITY.parent / source).resolve().exists(), volume
    for service in ("jaeger", "prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in extra["services"][service]["ports"])
