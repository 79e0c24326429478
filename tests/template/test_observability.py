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
        ("fundrouter", "OldestAuditSeconds"),
    } <= watched


def test_the_reconciler_has_an_errors_alarm() -> None:
    alarms = [
        a["Properties"]
        for a in resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["MetricName"] == "Errors"
    ]

    assert [
        (a["Namespace"], a["Dimensions"], a["Threshold"], a["ComparisonOperator"]) for a in alarms
    ] == [
        (
            "AWS/Lambda",
            [{"Name": "FunctionName", "Value": {"Ref": "ReconcilerFunction"}}],
            1,
            "GreaterThanOrEqualToThreshold",
        )
    ]


def test_a_failed_reconciler_run_goes_to_an_encrypted_queue_not_a_retry() -> None:
    config = resources("AWS::Serverless::Function")["ReconcilerFunction"]["Properties"][
        "EventInvokeConfig"
    ]
    on_failure = config["DestinationConfig"]["OnFailure"]
    queue = on_failure["Destination"]["Fn::GetAtt"][0]

    # The next minute's run is the retry: a retry would only queue behind it.
    assert config["MaximumRetryAttempts"] == 0
    assert on_failure["Type"] == "SQS"
    assert resources("AWS::SQS::Queue")[queue]["Properties"]["SqsManagedSseEnabled"] is True


def test_unpublished_status_events_have_an_alarm() -> None:
    watched = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == "AWS/SQS"
    }

    assert "UnpublishedStatusEventsQueue" in watched
