"""IAM as deployed: template.yaml as SAM transforms it (scripts/transform_template.py
in the SAM virtualenv), so roles, policies and managed policies SAM adds on its own
(AWSLambdaBasicExecutionRole, AWSLambdaDynamoDBExecutionRole, AWSXrayWriteOnlyAccess:
all on Resource "*") are checked too, not only what template.yaml spells out."""

import json
import subprocess
from functools import cache
from typing import Any

from tests.support.template import ROOT
from tests.template.test_template_rules import as_list, iam_problems, of_type

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
LAMBDA = "AWS::Lambda::Function"
ROLE = "AWS::IAM::Role"


@cache
def transformed() -> dict[str, Any]:
    assert SAM_PYTHON.exists(), "the SAM virtualenv is missing: run `make venvs`"
    done = subprocess.run(
        [str(SAM_PYTHON), str(ROOT / "scripts" / "transform_template.py"), "template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def role_of(function: dict[str, Any]) -> str | None:
    role = function["Properties"].get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role and role["Fn::GetAtt"][1] == "Arn":
        return str(role["Fn::GetAtt"][0])
    return None


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in as_list(policy["PolicyDocument"]["Statement"])
    ]


def test_the_transform_yields_the_five_functions() -> None:
    assert len(of_type(transformed(), LAMBDA)) == 5


def test_no_role_carries_a_managed_policy() -> None:
    roles = of_type(transformed(), ROLE)
    assert roles, "the transformed template has no roles"

    managed = {n: r["Properties"].get("ManagedPolicyArns") for n, r in roles.items()}

    assert {n: arns for n, arns in managed.items() if arns} == {}


def test_every_statement_names_its_resources_after_the_transform() -> None:
    assert iam_problems(transformed()) == []


def test_each_function_has_a_role_of_its_own_from_the_template() -> None:
    tpl = transformed()
    roles = {name: role_of(fn) for name, fn in of_type(tpl, LAMBDA).items()}

    assert {n: r for n, r in roles.items() if r not in of_type(tpl, ROLE)} == {}
    assert len(set(roles.values())) == len(roles)


def test_stream_readers_read_the_orders_stream_only() -> None:
    tpl = transformed()
    readers = {
        mapping["Properties"]["FunctionName"]["Ref"]
        for mapping in of_type(tpl, "AWS::Lambda::EventSourceMapping").values()
        if "StreamArn" in str(mapping["Properties"]["EventSourceArn"])  # not a queue
    }
    assert readers == {"MatcherFunction", "TrackerFunction"}
    functions = of_type(tpl, LAMBDA)

    granted = {
        name: [
            s["Resource"]
            for s in statements(tpl["Resources"][str(role_of(functions[name]))])
            if "dynamodb:GetRecords" in as_list(s["Action"])
        ]
        for name in readers
    }

    assert granted == {key: [{"Fn::GetAtt": ["OrdersTable", "StreamArn"]}] for key in readers}


def test_each_function_writes_logs_to_its_own_log_group_only() -> None:
    tpl = transformed()

    logs = {
        name: [
            s["Resource"]
            for s in statements(tpl["Resources"][str(role_of(fn))])
            if any(str(a).startswith("logs:") for a in as_list(s["Action"]))
        ]
        for name, fn in of_type(tpl, LAMBDA).items()
    }
    own = {
        name: [{"Fn::GetAtt": [fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}]
        for name, fn in of_type(tpl, LAMBDA).items()
    }

    assert logs == own
