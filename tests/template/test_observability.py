"""The operations dashboard and alarms the lifecycle issue asks for are in the
template, and the dashboard body is valid JSON once CloudFormation substitutes it."""

import json
import re

from tests.support.template import resources


def test_dashboard_body_is_json_after_substitution_and_shows_each_signal() -> None:
    body, variables = resources("AWS::CloudWatch::Dashboard")["OperationsDashboard"]["Properties"][
        "DashboardBody"
    ]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", body))

    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))

    assert names <= set(variables) | {"AWS::Region", "HttpApi"}
    titles = " ".join(w["properties"]["title"] for w in dashboard["widgets"]).lower()
    for signal in ("orders", "match rate", "utilization", "iterator age", "dead-letter", "drift"):
        assert signal in titles


def test_alarms_watch_dead_letters_iterator_age_drift_and_5xx() -> None:
    watched = {
        (a["Properties"]["Namespace"], a["Properties"]["MetricName"])
        for a in resources("AWS::CloudWatch::Alarm").values()
    }

    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "IteratorAge"),
        ("fundrouter", "CounterDrift"),
        ("AWS/ApiGateway", "5xx"),
        ("fundrouter", "OverLimitDisbursements"),
        ("fundrouter", "ReconcileFailures"),
    } <= watched
