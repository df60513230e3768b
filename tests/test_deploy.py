"""deploy/: the dashboard, the alert rules and the autoscaling examples name only real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from loopsafe import HashPool, LoopLagMonitor
from loopsafe.prometheus import register

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ALERTS = DEPLOY / "prometheus" / "loopsafe-alerts.yml"

#: PromQL words that are not metric names.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
_KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def exported_names() -> set[str]:
    """Every series name a real registry with loopsafe's collector exports (all families)."""
    names: set[str] = set()
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOOPSAFE_RUNTIME_DIR", directory)
        registry = CollectorRegistry()
        pool = HashPool(1, host_limit=2, host_key="deploy-names")
        collector = register({"default": pool}, registry=registry, host_key="deploy-names")
        collector.lag = LoopLagMonitor(keep_all=False)  # an idle monitor: zeros, but named
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
            for suffix in suffixes.get(family.type, [""]):
                names.add(family.name + suffix)
        registry.unregister(collector)
        collector.close()
        pool.close()
    return names


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords)."""
    text = _STRING.sub('""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = _GROUPING.sub("", text)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an aggregation
        found.add(match.group())
    return found


def grafana_expressions() -> list[str]:
    """Every query of the dashboard, with Grafana's variables given concrete values."""
    dashboard = json.loads((DEPLOY / "grafana" / "loopsafe-dashboard.json").read_text())
    out = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    label_values = re.compile(r"label_values\((.*),\s*(\w+)\)")
    out += [
        label_values.sub(r"group by (\2) (\1)", var["definition"])
        for var in dashboard["templating"]["list"]
        if var["type"] == "query"
    ]
    return [
        e.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
        for e in out
    ]


def alert_expressions() -> list[str]:
    """Every expression of the shipped alert rules."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def autoscaling_expressions() -> list[str]:
    """The KEDA triggers' queries and prometheus-adapter's, its templates filled in."""
    keda = yaml.safe_load((DEPLOY / "keda" / "scaledobject.yaml").read_text())
    out = [trigger["metadata"]["query"] for trigger in keda["spec"]["triggers"]]
    adapter = yaml.safe_load((DEPLOY / "hpa" / "prometheus-adapter-rules.yaml").read_text())
    for rule in adapter["externalRules"]:
        query = rule["metricsQuery"].replace("<<.LabelMatchers>>", 'job="web"')
        out.append(query.replace("<<.GroupBy>>", "job"))
    return out


EXPRESSIONS = [
    *(pytest.param(e, id=f"grafana-{i}") for i, e in enumerate(grafana_expressions())),
    *(pytest.param(e, id=f"alert-{i}") for i, e in enumerate(alert_expressions())),
    *(pytest.param(e, id=f"autoscaling-{i}") for i, e in enumerate(autoscaling_expressions())),
]


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The names, collected once."""
    return exported_names()


def test_the_registry_exports_what_the_rules_need(exported):
    """The collector names the series the examples lean on (a guard on the guard)."""
    assert {"loopsafe_refused_total", "loopsafe_host_limit", "loopsafe_threads"} <= exported
    assert "loopsafe_service_seconds_bucket" in exported
    assert "loopsafe_loop_lag_p99_seconds" in exported


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_every_query_names_only_exported_metrics(expression, exported):
    """Each shipped query reads a loopsafe metric, and none that loopsafe does not export."""
    names = metric_names(expression)
    assert names, expression
    assert names <= exported, names - exported


def test_the_name_finder_sees_metrics_not_functions_or_labels():
    """The checker itself: functions, labels, strings, ranges and groupings are not metrics."""
    expression = 'sum by (pool) (rate(loopsafe_x_total{job="a_b"}[1m])) > on (job) bogus_metric'
    assert metric_names(expression) == {"loopsafe_x_total", "bogus_metric"}


def test_the_alert_rules_cover_what_an_operator_needs():
    """Refusals, loop lag, a saturated budget, expired/abandoned calls and thread shortage alert."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == {
        "LoopsafeRefusalsSustained",
        "LoopsafeLoopLagHigh",
        "LoopsafeHashingBudgetSaturated",
        "LoopsafeCallsExpiredOrAbandoned",
        "LoopsafeWorkerThreadsBelowBound",
    }
    for rule in rules.values():
        assert rule["for"], rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_accepts_the_rules():
    """promtool check rules passes on the shipped file (CI installs promtool)."""
    done = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout
