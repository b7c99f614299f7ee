"""The CloudWatch dashboard in template.yaml shows every metric the code emits, with exactly the dimensions
the code gives them (a widget with other dimensions would show nothing), plus the dead-letter queue and the
executions' outcomes."""

from __future__ import annotations

import json
import re

from chunking import observability
from tests.deploy.sam import load_template

EMITTED = {value for name, value in vars(observability).items() if name.isupper() and isinstance(value, str)
           and name not in ("NAMESPACE",)}


def _body() -> dict:
    dashboard = load_template()["Resources"]["OperationsDashboard"]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    referenced = set(re.findall(r"\$\{([^}]+)\}", text))
    template = load_template()
    known = set(template["Resources"]) | set(template["Parameters"])
    # every ${...} is a pseudo parameter, a parameter, a resource or an attribute of one
    assert {r.split(".")[0] for r in referenced if not r.startswith("AWS::")} <= known
    filled = re.sub(r"\$\{([^}]+)\}", "x", text)
    return json.loads(filled)


def _metrics(body):
    for widget in body["widgets"]:
        yield from widget.get("properties", {}).get("metrics", [])


def test_every_emitted_metric_is_on_the_dashboard():
    shown = {line[1] for line in _metrics(_body()) if line[0] == observability.NAMESPACE}
    assert shown == EMITTED, f"missing {EMITTED - shown}, unknown {shown - EMITTED}"


def test_pipeline_metrics_use_exactly_the_emf_dimensions():
    for line in _metrics(_body()):
        if line[0] == observability.NAMESPACE:
            pairs = line[2:-1]
            assert [pairs[i] for i in range(0, len(pairs), 2)] == ["environment", "function", "service"], line


def test_dead_letter_depth_and_execution_outcomes_are_shown():
    lines = list(_metrics(_body()))
    depth = next(line for line in lines if line[:2] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible"])
    assert depth[2:4] == ["QueueName", "x"]
    outcomes = {line[1] for line in lines if line[0] == "AWS/States"}
    assert {"ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"} <= outcomes
