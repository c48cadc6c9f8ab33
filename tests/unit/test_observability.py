"""The alert rules and the dashboard as code: well-formed, and every expression names only metrics the
services export (their registries, built offline), so a renamed metric cannot silently mute an alert.
(``promtool check rules`` would also parse the PromQL; it is not installed by ``make setup``.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import Metric

from services.audit.main import create_app as audit_app
from services.audit.settings import AuditSettings
from services.directive.main import create_app as directive_app
from services.directive.settings import DirectiveSettings

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parents[2] / "deploy" / "observability"
METRIC = re.compile(r"\b((?:renja|process|python)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


COLLECTED = re.compile(r'(Gauge|Counter)MetricFamily\(\s*"(renja_[a-z0-9_]+)"')
NOTIFIER_MAIN = Path(__file__).resolve().parents[2] / "services" / "notifier" / "main.py"


def exported_names() -> set[str]:
    """Every sample name the services' registries can expose (a directive app and the audit), plus the
    notifier's timer families, which its collector yields only once the scheduler runs (read from the
    collector's source: a family renamed there no longer matches the rules)."""
    names: set[str] = set()
    for kind, name in COLLECTED.findall(NOTIFIER_MAIN.read_text(encoding="utf-8")):
        names |= {name + suffix for suffix in SUFFIXES["counter" if kind == "Counter" else "gauge"]}
    for app in (directive_app(DirectiveSettings(environment="test")), audit_app(AuditSettings(environment="test"))):
        family: Metric
        for family in app.state.metrics.registry.collect():
            names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def test_every_alert_is_complete_and_names_exported_metrics() -> None:
    rules = [r for g in yaml.safe_load((HERE / "alerts.yaml").read_text())["groups"] for r in g["rules"]]
    assert len(rules) >= 6
    exported = exported_names()
    for rule in rules:
        assert rule["alert"].startswith("Renja") and rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["expr"].count("(") == rule["expr"].count(")")
        used = set(METRIC.findall(rule["expr"]))
        assert used and used <= exported, (rule["alert"], used - exported)


def test_the_dashboard_and_scrape_config_name_exported_metrics_and_the_rules() -> None:
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    exported = exported_names()
    assert dashboard["uid"] == "renja-services" and dashboard["panels"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(METRIC.findall(target["expr"]))
            assert used and used <= exported, (panel["title"], used - exported)
    scrape = yaml.safe_load((HERE / "prometheus.yaml").read_text())
    assert scrape["rule_files"] == ["alerts.yaml"]
    assert len(scrape["scrape_configs"][0]["static_configs"]) == 6
