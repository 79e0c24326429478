"""Rules on template.yaml and samconfig.toml, checked on the parsed files.

Each rule covers every resource of its kind, so it also applies to functions, stream
mappings, roles and tables added later. The checkers that could pass because they found
nothing (IAM, stream mappings) also get synthetic bad input, which shows they really
reject it."""

import ast
import json
import re
import shlex
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeGuard

import pytest
from fundrouter.http.app import build_app
from fundrouter.http.auth import ROUTE_SCOPES, verified_by_the_function
from fundrouter.persistence.orders import (
    BY_DUE,
    BY_LINE,
    BY_TENANT,
    BY_TENANT_STATUS,
    DUE_SHARDS,
    TENANT_SHARDS,
)

from tests.support.template import ROOT, resources, template

Template = dict[str, Any]
Props = dict[str, Any]

FUNCTION = "AWS::Serverless::Function"
LOG_GROUP = "AWS::Logs::LogGroup"
ROUTE = "AWS::ApiGatewayV2::Route"
AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
INTEGRATION = "AWS::ApiGatewayV2::Integration"
IAM_KINDS = (
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
)
TABLE_KINDS = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable", "AWS::Serverless::SimpleTable")
STREAM_EVENT_TYPES = ("DynamoDB", "Kinesis")

RESOURCE_SERVER = "fundrouter"
SCOPE_NAMES = ("orders.write", "orders.read", "lines.admin")
ALLOWED_SCOPES = {f"{RESOURCE_SERVER}/{name}" for name in SCOPE_NAMES}
REQUIRED_OUTPUTS = (
    "ApiUrl",
    "TokenUrl",
    "OrdersTableName",
    "UserPoolId",
    "TenantClientId",
    "AdminClientId",
)

CODE_URI = re.compile(r"functions/(?P<dir>[A-Za-z0-9_-]+)/?")
HANDLER = re.compile(r"(?P<module>[A-Za-z_][A-Za-z0-9_]*)\.handler")
TARGET = re.compile(r"integrations/\$\{(?P<integration>[A-Za-z0-9]+)\}")
COGNITO_ISSUER = re.compile(
    r"https://cognito-idp\.\$\{AWS::Region\}\.amazonaws\.com/\$\{(?P<pool>[A-Za-z0-9]+)\}"
)
# Actions that take no resource (IAM requires Resource "*"): X-Ray's trace writes.
# CloudWatch metrics need no such grant here: they are written as EMF log lines.
RESOURCELESS_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
MAX_RETRY_ATTEMPTS = 10
RECORD_AGE_SECONDS = range(60, 604_800 + 1)  # bounded; -1 (the default) means forever


# ---------------------------------------------------------------- reading the template


def of_type(tpl: Template, *kinds: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in tpl.get("Resources", {}).items() if r.get("Type") in kinds}


def merged(base: Any, override: Any) -> Any:
    """SAM's Globals semantics: maps merge, lists add up, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        keys = base.keys() | override.keys()
        return {
            k: merged(base[k], override[k])
            if k in base and k in override
            else override.get(k, base.get(k))
            for k in keys
        }
    if isinstance(base, list) and isinstance(override, list):
        return base + override
    return override


def functions(tpl: Template | None = None) -> dict[str, Props]:
    """Every SAM function's properties as deployed, Globals included."""
    tpl = template() if tpl is None else tpl
    defaults = tpl.get("Globals", {}).get("Function", {})
    return {n: merged(defaults, r.get("Properties", {})) for n, r in of_type(tpl, FUNCTION).items()}


def ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def literal_text(value: Any) -> str:
    """The characters a value spells out; a Ref or GetAtt stands for a name, never a wildcard."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(literal_text(item) for item in value)
    if isinstance(value, dict):
        if value.keys() & {"Ref", "Fn::GetAtt"}:
            return "${...}"
        return "".join(literal_text(item) for item in value.values())
    return str(value)


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def top_level_names(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


# ---------------------------------------------------------------- globals


def test_functions_default_to_python313_traced_on_the_architecture_parameter() -> None:
    defaults = template()["Globals"]["Function"]

    assert {key: defaults.get(key) for key in ("Runtime", "Architectures", "Tracing")} == {
        "Runtime": "python3.13",
        "Architectures": [{"Ref": "Architecture"}],
        "Tracing": "Active",
    }


def test_architecture_parameter_defaults_to_arm64_and_allows_only_arm64_and_x86_64() -> None:
    parameter = template()["Parameters"]["Architecture"]

    assert parameter.get("Default") == "arm64"
    assert sorted(parameter.get("AllowedValues", [])) == ["arm64", "x86_64"]


def test_no_function_overrides_the_global_runtime_architecture_or_tracing() -> None:
    defaults = template()["Globals"]["Function"]
    own = {n: r.get("Properties", {}) for n, r in resources(FUNCTION).items()}

    overrides = {
        f"{name}.{key}": props[key]
        for name, props in own.items()
        for key in ("Runtime", "Architectures", "Tracing")
        if key in props and props[key] != defaults.get(key)
    }

    assert overrides == {}


# Order bodies and pydantic error text carry customer data: never into X-Ray or logs.
NO_CAPTURE = {
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
}


def test_no_function_traces_responses_or_errors_or_logs_its_events() -> None:
    found = functions()
    assert found, "the template declares no functions"

    settings = {
        name: {k: props.get("Environment", {}).get("Variables", {}).get(k) for k in NO_CAPTURE}
        for name, props in found.items()
    }

    assert settings == dict.fromkeys(found, NO_CAPTURE)


# ---------------------------------------------------------------- functions


def handler_problems(name: str, props: Props) -> list[str]:
    code_uri, handler = props.get("CodeUri"), props.get("Handler")
    if not (isinstance(code_uri, str) and CODE_URI.fullmatch(code_uri)):
        return [f"{name}: CodeUri {code_uri!r} is not functions/<dir>/"]
    if not (ROOT / code_uri).is_dir():
        return [f"{name}: CodeUri {code_uri} does not exist"]
    match = HANDLER.fullmatch(handler) if isinstance(handler, str) else None
    if match is None:
        return [f"{name}: Handler {handler!r} is not <module>.handler"]
    module = ROOT / code_uri / f"{match['module']}.py"
    if not module.is_file():
        return [f"{name}: {module.relative_to(ROOT)} does not exist"]
    if "handler" not in top_level_names(module):
        return [f"{name}: {module.relative_to(ROOT)} defines no handler"]
    return []


def test_every_function_handler_is_a_handler_defined_in_its_code_folder() -> None:
    found = functions()
    assert found, "the template declares no functions"

    problems = [p for name, props in found.items() for p in handler_problems(name, props)]

    assert problems == []


def test_handler_module_names_are_distinct_across_functions() -> None:
    modules = Counter(
        str(props.get("Handler", "")).rsplit(".", 1)[0] for props in functions().values()
    )

    assert [module for module, uses in modules.items() if uses > 1] == []


def test_every_function_uses_the_shared_layer() -> None:
    shared = [
        name
        for name, layer in resources("AWS::Serverless::LayerVersion").items()
        if str(layer["Properties"].get("ContentUri", "")).rstrip("/") == "layers/fundrouter"
    ]
    assert len(shared) == 1, f"expected one layer built from layers/fundrouter/, found {shared}"

    without = [n for n, p in functions().items() if {"Ref": shared[0]} not in p.get("Layers", [])]

    assert without == []


def retention_is_set(log_group: dict[str, Any]) -> bool:
    days = log_group.get("Properties", {}).get("RetentionInDays")
    return days == {"Ref": "LogRetentionDays"} or (is_int(days) and days > 0)


def test_every_function_logs_to_a_log_group_of_the_template_with_retention() -> None:
    log_groups = resources(LOG_GROUP)
    found = functions()
    assert found, "the template declares no functions"

    targets = {n: ref(p.get("LoggingConfig", {}).get("LogGroup")) for n, p in found.items()}
    problems = [
        f"{name}: LoggingConfig.LogGroup {target!r} is no log group of the template with retention"
        for name, target in targets.items()
        if target not in log_groups or not retention_is_set(log_groups[target])
    ]

    assert problems == []


def test_every_log_group_has_a_retention() -> None:
    log_groups = resources(LOG_GROUP)
    assert log_groups, "the template declares no log groups"

    assert [name for name, group in log_groups.items() if not retention_is_set(group)] == []


# ---------------------------------------------------------------- IAM


def policy_documents(tpl: Template) -> Iterator[tuple[str, Any]]:
    """(where, policy) for every function policy and every IAM policy in the template."""
    for name, props in functions(tpl).items():
        for i, policy in enumerate(as_list(props.get("Policies", []))):
            yield f"{name}.Policies[{i}]", policy
    for name, resource in of_type(tpl, *IAM_KINDS).items():
        props = resource.get("Properties", {})
        if "PolicyDocument" in props:
            yield f"{name}.PolicyDocument", props["PolicyDocument"]
        for i, policy in enumerate(props.get("Policies", [])):
            yield f"{name}.Policies[{i}]", policy.get("PolicyDocument", policy)
        if props.get("ManagedPolicyArns"):
            yield f"{name}.ManagedPolicyArns", props["ManagedPolicyArns"]


def statement_problems(where: str, statement: Any) -> list[str]:
    if not isinstance(statement, dict):
        return [f"{where}: {statement!r} is not a statement"]
    if statement.get("Effect") == "Deny":
        return []
    problems = [
        f"{where}: {key} grants by exclusion"
        for key in ("NotAction", "NotResource")
        if key in statement
    ]
    problems += [f"{where}: no {key}" for key in ("Action", "Resource") if key not in statement]
    if statement.get("Resource") == "*" and set(as_list(statement.get("Action"))) <= (
        RESOURCELESS_ACTIONS
    ):
        return problems
    for key in ("Action", "Resource"):
        problems += [
            f"{where}: {key} {json.dumps(value)} has a wildcard"
            for value in as_list(statement.get(key, []))
            if "*" in literal_text(value)
        ]
    return problems


def iam_problems(tpl: Template) -> list[str]:
    problems: list[str] = []
    for where, document in policy_documents(tpl):
        if not (isinstance(document, dict) and "Statement" in document):
            problems.append(
                f"{where}: {json.dumps(document)} is not a policy of explicit statements"
            )
            continue
        for i, statement in enumerate(as_list(document["Statement"])):
            problems += statement_problems(f"{where}.Statement[{i}]", statement)
    return problems


def test_iam_policies_grant_no_wildcard_actions_or_resources() -> None:
    assert list(policy_documents(template())), "found no policy: the rule would check nothing"

    assert iam_problems(template()) == []


def function_with_policy(policy: Any) -> Template:
    return {"Resources": {"Fn": {"Type": FUNCTION, "Properties": {"Policies": [policy]}}}}


def role_with_policy(document: Any) -> Template:
    role = {"Policies": [{"PolicyName": "p", "PolicyDocument": document}]}
    return {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": role}}}


def allow(action: Any, resource: Any) -> dict[str, Any]:
    return {"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}


TABLE_ARN = {"Fn::GetAtt": ["OrdersTable", "Arn"]}


def test_iam_rule_accepts_explicit_actions_on_named_resources() -> None:
    index = {"Fn::Sub": "${OrdersTable.Arn}/index/byTenant"}

    assert iam_problems(function_with_policy(allow(["dynamodb:Query"], [TABLE_ARN, index]))) == []
    assert iam_problems(role_with_policy(allow("sqs:SendMessage", {"Ref": "Queue"}))) == []
    assert iam_problems(role_with_policy(allow(sorted(RESOURCELESS_ACTIONS), "*"))) == []


@pytest.mark.parametrize(
    "tpl",
    [
        function_with_policy({"DynamoDBCrudPolicy": {"TableName": {"Ref": "OrdersTable"}}}),
        function_with_policy("AmazonDynamoDBFullAccess"),
        function_with_policy(allow("*", TABLE_ARN)),
        function_with_policy(allow(["dynamodb:GetItem", "dynamodb:*"], TABLE_ARN)),
        function_with_policy(allow("dynamodb:Get*", TABLE_ARN)),
        function_with_policy(allow("dynamodb:GetItem", "*")),
        function_with_policy(allow("dynamodb:Query", {"Fn::Sub": "${OrdersTable.Arn}/index/*"})),
        function_with_policy(
            {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "x"}]}
        ),
        role_with_policy(allow("logs:*", {"Ref": "LogGroup"})),
        role_with_policy(allow(["xray:PutTraceSegments", "dynamodb:GetItem"], "*")),
        role_with_policy(allow("events:PutEvents", ["arn:aws:events:*:*:event-bus/*"])),
        {
            "Resources": {
                "Role": {"Type": "AWS::IAM::Role", "Properties": {"ManagedPolicyArns": ["x"]}}
            }
        },
        {
            "Resources": {
                "P": {"Type": "AWS::IAM::Policy", "Properties": {"PolicyDocument": allow("*", "*")}}
            }
        },
    ],
    ids=[
        "sam-policy-template",
        "managed-policy-name",
        "action-star",
        "service-star",
        "partial-action-star",
        "resource-star",
        "every-index",
        "not-action",
        "role-service-star",
        "resource-star-beside-x-ray",
        "role-resource-pattern",
        "role-managed-policy",
        "iam-policy-star",
    ],
)
def test_iam_rule_rejects_wildcards_templates_and_managed_policies(tpl: Template) -> None:
    assert iam_problems(tpl) != []


# ---------------------------------------------------------------- DynamoDB


def table_settings(table: dict[str, Any]) -> dict[str, Any]:
    props = table.get("Properties", {})
    return {
        "Type": table["Type"],
        "BillingMode": props.get("BillingMode"),
        "PointInTimeRecoveryEnabled": props.get("PointInTimeRecoverySpecification", {}).get(
            "PointInTimeRecoveryEnabled"
        ),
        "SSESpecification": props.get("SSESpecification"),
        "DeletionProtectionEnabled": props.get("DeletionProtectionEnabled"),
    }


NO_VALUE = {"Ref": "AWS::NoValue"}
# Always encrypted at rest: with the key TableKmsKeyArn names, else an AWS-owned key.
TABLE_ENCRYPTION = {
    "SSEEnabled": {"Fn::If": ["HasTableKmsKey", True, False]},
    "SSEType": {"Fn::If": ["HasTableKmsKey", "KMS", NO_VALUE]},
    "KMSMasterKeyId": {"Fn::If": ["HasTableKmsKey", {"Ref": "TableKmsKeyArn"}, NO_VALUE]},
}


def test_the_table_key_parameter_defaults_to_the_aws_owned_key() -> None:
    tpl = template()

    assert tpl["Parameters"]["TableKmsKeyArn"]["Default"] == ""
    assert tpl["Conditions"]["HasTableKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "TableKmsKeyArn"}, ""]}]
    }


def test_every_table_is_on_demand_recoverable_encrypted_and_deletion_protected() -> None:
    tables = {n: r for n, r in resources().items() if r["Type"] in TABLE_KINDS}
    assert tables, "the template declares no tables"

    expected = {
        "Type": "AWS::DynamoDB::Table",
        "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoveryEnabled": True,
        "SSESpecification": TABLE_ENCRYPTION,
        "DeletionProtectionEnabled": {"Ref": "DeletionProtection"},
    }

    assert {name: table_settings(table) for name, table in tables.items()} == {
        name: expected for name in tables
    }


def test_orders_table_streams_new_and_old_images() -> None:
    stream = resources()["OrdersTable"]["Properties"].get("StreamSpecification", {})

    assert stream.get("StreamViewType") == "NEW_AND_OLD_IMAGES"


def test_persistence_index_names_are_gsis_of_the_orders_table() -> None:
    indexes = resources()["OrdersTable"]["Properties"].get("GlobalSecondaryIndexes", [])

    assert {BY_TENANT, BY_TENANT_STATUS} <= {index["IndexName"] for index in indexes}


def test_no_index_copies_whole_items_and_time_ordered_keys_are_sharded() -> None:
    """An ALL projection rewrites the index on every write of the item; one partition
    key for a time-ordered index, or for one tenant, caps the whole system at that
    partition's 1,000 WCU/s (docs/capacity.md)."""
    projections = {
        (table, index["IndexName"]): index["Projection"]["ProjectionType"]
        for table in ("OrdersTable", "LinesTable")
        for index in resources()[table]["Properties"]["GlobalSecondaryIndexes"]
    }

    assert projections == {
        ("OrdersTable", BY_TENANT): "KEYS_ONLY",
        ("OrdersTable", BY_TENANT_STATUS): "KEYS_ONLY",
        ("OrdersTable", BY_DUE): "KEYS_ONLY",
        ("OrdersTable", BY_LINE): "INCLUDE",  # what the audit sums, per line
        ("LinesTable", "lines"): "KEYS_ONLY",
    }
    assert DUE_SHARDS >= 32
    assert TENANT_SHARDS >= 8


def test_every_queue_is_encrypted_at_rest() -> None:
    queues = resources("AWS::SQS::Queue")
    assert queues, "the template declares no queues"

    plain = [
        name
        for name, queue in queues.items()
        if queue["Properties"].get("SqsManagedSseEnabled") is not True
        and not queue["Properties"].get("KmsMasterKeyId")
    ]

    assert plain == []


def test_one_reconciler_run_at_a_time() -> None:
    """Two overlapping runs would expire and re-drive the same orders against each
    other's conditions: wasted writes and conflicts on the line items."""
    reconciler = resources(FUNCTION)["ReconcilerFunction"]["Properties"]

    assert reconciler["ReservedConcurrentExecutions"] == 1


# ---------------------------------------------------------------- stream event sources


def reads_a_queue(tpl: Template, source: Any) -> bool:
    """SQS mappings take none of the stream settings, so the stream rule skips them."""
    queues = of_type(tpl, "AWS::SQS::Queue")
    if isinstance(source, dict) and "Fn::GetAtt" in source:
        return as_list(source["Fn::GetAtt"])[0] in queues
    return ":sqs:" in literal_text(source)


def stream_mappings(tpl: Template) -> dict[str, Props]:
    """Every DynamoDB / Kinesis event of a SAM function and every non-SQS mapping resource."""
    found: dict[str, Props] = {}
    for name, resource in of_type(tpl, FUNCTION).items():
        for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") in STREAM_EVENT_TYPES:
                found[f"{name}.Events.{event_name}"] = event.get("Properties", {})
    for name, resource in of_type(tpl, "AWS::Lambda::EventSourceMapping").items():
        props = resource.get("Properties", {})
        if not reads_a_queue(tpl, props.get("EventSourceArn")):
            found[name] = props
    return found


def stream_mapping_problems(props: Props) -> list[str]:
    problems = []
    if props.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
        problems.append("FunctionResponseTypes is not [ReportBatchItemFailures]")
    retries = props.get("MaximumRetryAttempts")
    if not (is_int(retries) and 0 <= retries <= MAX_RETRY_ATTEMPTS):
        problems.append(f"MaximumRetryAttempts {retries!r} is not 0..{MAX_RETRY_ATTEMPTS}")
    if props.get("BisectBatchOnFunctionError") is not True:
        problems.append("BisectBatchOnFunctionError is not true")
    age = props.get("MaximumRecordAgeInSeconds")
    if not (is_int(age) and age in RECORD_AGE_SECONDS):
        problems.append(f"MaximumRecordAgeInSeconds {age!r} is not a bounded age (60..604800)")
    on_failure = (props.get("DestinationConfig") or {}).get("OnFailure") or {}
    if not on_failure.get("Destination"):
        problems.append("DestinationConfig.OnFailure.Destination is missing")
    return problems


def test_every_stream_mapping_reports_item_failures_bounds_retries_and_has_a_dead_letter() -> None:
    found = stream_mappings(template())

    problems = {name: stream_mapping_problems(props) for name, props in found.items()}

    assert {name: wrong for name, wrong in problems.items() if wrong} == {}


SAFE_MAPPING: Props = {
    "Stream": {"Fn::GetAtt": ["OrdersTable", "StreamArn"]},
    "StartingPosition": "TRIM_HORIZON",
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "MaximumRetryAttempts": 5,
    "BisectBatchOnFunctionError": True,
    "MaximumRecordAgeInSeconds": 3600,
    "DestinationConfig": {
        "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}
    },
}


def test_stream_mapping_rule_accepts_a_mapping_with_every_safeguard() -> None:
    assert stream_mapping_problems(SAFE_MAPPING) == []


def test_stream_mapping_rule_reports_a_mapping_without_an_on_failure_destination() -> None:
    mapping = {k: v for k, v in SAFE_MAPPING.items() if k != "DestinationConfig"}

    assert stream_mapping_problems(mapping) == [
        "DestinationConfig.OnFailure.Destination is missing"
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FunctionResponseTypes", None),
        ("MaximumRetryAttempts", None),
        ("MaximumRetryAttempts", -1),
        ("MaximumRetryAttempts", 185),
        ("BisectBatchOnFunctionError", False),
        ("MaximumRecordAgeInSeconds", None),
        ("MaximumRecordAgeInSeconds", -1),
        ("DestinationConfig", {"OnFailure": {}}),
    ],
)
def test_stream_mapping_rule_reports_each_missing_safeguard(key: str, value: Any) -> None:
    mapping = SAFE_MAPPING | {key: value}

    assert [problem.split()[0] for problem in stream_mapping_problems(mapping)] == [
        key if key != "DestinationConfig" else "DestinationConfig.OnFailure.Destination"
    ]


def test_stream_mappings_are_found_on_function_events_and_mapping_resources() -> None:
    queue_arn = {"Fn::GetAtt": ["Queue", "Arn"]}
    events = {
        "Orders": {"Type": "DynamoDB", "Properties": {}},
        "Clicks": {"Type": "Kinesis", "Properties": {}},
        "Jobs": {"Type": "SQS", "Properties": {"Queue": queue_arn}},
        "Api": {"Type": "HttpApi", "Properties": {}},
    }
    tpl: Template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Fn": {"Type": FUNCTION, "Properties": {"Events": events}},
            "StreamMapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}},
            },
            "QueueMapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": queue_arn},
            },
        }
    }

    assert sorted(stream_mappings(tpl)) == ["Fn.Events.Clicks", "Fn.Events.Orders", "StreamMapping"]


# ---------------------------------------------------------------- HTTP API


def integration_of(target: Any) -> str | None:
    """The integration a route's Target names: !Sub integrations/${X} or a "/" join."""
    if not isinstance(target, dict):
        return None
    if isinstance(target.get("Fn::Sub"), str):
        match = TARGET.fullmatch(target["Fn::Sub"])
        return match["integration"] if match else None
    if target.get("Fn::Join", [None])[0] == "/":
        parts = target["Fn::Join"][1]
        return ref(parts[1]) if len(parts) == 2 and parts[0] == "integrations" else None
    return None


def route_problems(props: Props, jwt_authorizers: set[str], integrations: set[str]) -> list[str]:
    if verified_by_the_function(str(props.get("RouteKey"))):  # a tenant's route: decision 30
        wrong = {k: props.get(k) for k in ("AuthorizerId", "AuthorizationScopes") if k in props}
        return [
            *([] if props.get("AuthorizationType") == "NONE" else ["a tenant's route is not NONE"]),
            *([f"{wrong} on a route the function verifies"] if wrong else []),
            *([] if integration_of(props.get("Target")) in integrations else ["no integration"]),
        ]
    problems = []
    if props.get("AuthorizationType") != "JWT":
        problems.append(f"AuthorizationType {props.get('AuthorizationType')!r} is not JWT")
    if ref(props.get("AuthorizerId")) not in jwt_authorizers:
        problems.append(f"AuthorizerId {props.get('AuthorizerId')!r} is no JWT authorizer")
    scopes = props.get("AuthorizationScopes") or []
    if not scopes or not set(scopes) <= ALLOWED_SCOPES:
        problems.append(f"AuthorizationScopes {scopes!r} are empty or unknown")
    if integration_of(props.get("Target")) not in integrations:
        problems.append(f"Target {props.get('Target')!r} is no integration of the template")
    return problems


def test_every_route_needs_a_jwt_with_known_scopes_and_targets_an_integration() -> None:
    routes = resources(ROUTE)
    assert routes, "the template declares no routes"
    authorizers = resources(AUTHORIZER).items()
    jwt = {n for n, a in authorizers if a["Properties"].get("AuthorizerType") == "JWT"}
    integrations = set(resources(INTEGRATION))

    problems = {n: route_problems(r["Properties"], jwt, integrations) for n, r in routes.items()}

    assert {name: wrong for name, wrong in problems.items() if wrong} == {}


def test_each_route_s_scopes_are_the_ones_the_function_checks() -> None:
    keys = {r["Properties"]["RouteKey"] for r in resources(ROUTE).values()} - {"$default"}
    declared = {
        r["Properties"]["RouteKey"]: tuple(r["Properties"]["AuthorizationScopes"])
        for r in resources(ROUTE).values()
        if not verified_by_the_function(r["Properties"]["RouteKey"])
    }
    expected = {key: tuple(s.value for s in scopes) for key, scopes in ROUTE_SCOPES.items()}

    assert keys == set(ROUTE_SCOPES)
    assert declared == {k: v for k, v in expected.items() if not verified_by_the_function(k)}


def test_jwt_authorizers_trust_tokens_issued_by_a_user_pool_of_the_template() -> None:
    authorizers = resources(AUTHORIZER)
    assert authorizers, "the template declares no authorizer"
    pools = set(resources("AWS::Cognito::UserPool"))

    issuers = {}
    for name, authorizer in authorizers.items():
        issuer = authorizer["Properties"].get("JwtConfiguration", {}).get("Issuer")
        sub = issuer.get("Fn::Sub") if isinstance(issuer, dict) else None
        match = COGNITO_ISSUER.fullmatch(sub) if isinstance(sub, str) else None
        issuers[name] = match["pool"] in pools if match else issuer

    assert issuers == dict.fromkeys(authorizers, True)


def test_route_keys_are_unique_per_api() -> None:
    keys = Counter(
        (json.dumps(r["Properties"].get("ApiId"), sort_keys=True), r["Properties"]["RouteKey"])
        for r in resources(ROUTE).values()
    )

    assert [key for key, uses in keys.items() if uses > 1] == []


def invokes_api_function(integration: dict[str, Any]) -> bool:
    uri = integration["Properties"].get("IntegrationUri")
    if isinstance(uri, dict) and "Fn::GetAtt" in uri:
        return bool(as_list(uri["Fn::GetAtt"])[0] == "ApiFunction")
    return "${ApiFunction.Arn}" in literal_text(uri)


def template_routes_of_api_function() -> set[str]:
    integrations = {n for n, i in resources(INTEGRATION).items() if invokes_api_function(i)}
    return {
        route["Properties"]["RouteKey"]
        for route in resources(ROUTE).values()
        if integration_of(route["Properties"].get("Target")) in integrations
        and route["Properties"]["RouteKey"] != "$default"  # the resolver's 405s and 404s
    }


def resolver_routes() -> set[str]:
    """Every route the ApiFunction's Powertools resolver serves, as an API Gateway route
    key: <orderId> becomes {orderId}."""
    app = build_app()
    return {
        f"{route.method} {re.sub(r'<(\w+)>', r'{\1}', route.path)}"
        for route in [*app._static_routes, *app._dynamic_routes]
    }


def test_template_routes_are_exactly_the_routes_the_api_function_serves() -> None:
    served = resolver_routes()
    assert served >= {"POST /v1/orders", "GET /v1/orders", "GET /v1/orders/{orderId}"}

    assert template_routes_of_api_function() == served


# ---------------------------------------------------------------- identity


def test_resource_server_offers_exactly_the_three_scopes() -> None:
    servers = [
        s["Properties"]
        for s in resources("AWS::Cognito::UserPoolResourceServer").values()
        if s["Properties"].get("Identifier") == RESOURCE_SERVER
    ]

    assert [sorted(scope["ScopeName"] for scope in s.get("Scopes", [])) for s in servers] == [
        sorted(SCOPE_NAMES)
    ]


def test_every_app_client_is_a_confidential_client_credentials_client() -> None:
    clients = resources("AWS::Cognito::UserPoolClient")
    assert clients, "the template declares no app clients"

    settings = {
        name: {key: c["Properties"].get(key) for key in ("AllowedOAuthFlows", "GenerateSecret")}
        for name, c in clients.items()
    }

    expected = {"AllowedOAuthFlows": ["client_credentials"], "GenerateSecret": True}

    assert {name: actual for name, actual in settings.items() if actual != expected} == {}


def test_app_clients_ask_only_for_scopes_of_the_resource_server() -> None:
    scopes = {
        n: c["Properties"].get("AllowedOAuthScopes")
        for n, c in resources("AWS::Cognito::UserPoolClient").items()
    }

    assert scopes, "the template declares no app clients"

    assert {n: s for n, s in scopes.items() if not (s and set(s) <= ALLOWED_SCOPES)} == {}


def test_app_clients_turn_off_every_user_sign_in_flow() -> None:
    flows = {
        n: c["Properties"].get("ExplicitAuthFlows")
        for n, c in resources("AWS::Cognito::UserPoolClient").items()
    }

    assert flows, "the template declares no app clients"

    assert {
        n: f for n, f in flows.items() if f is None or set(f) - {"ALLOW_REFRESH_TOKEN_AUTH"}
    } == {}


# ---------------------------------------------------------------- outputs


def test_outputs_name_the_api_token_url_table_pool_and_clients() -> None:
    assert [name for name in REQUIRED_OUTPUTS if name not in template().get("Outputs", {})] == []


# ---------------------------------------------------------------- samconfig.toml


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


def environments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: env for name, env in config.items() if isinstance(env, dict)}


def overrides(parameters: dict[str, Any]) -> dict[str, str]:
    value = parameters.get("parameter_overrides", "")
    pairs = shlex.split(value) if isinstance(value, str) else value
    return dict(pair.split("=", 1) for pair in pairs)


def test_samconfig_has_a_default_and_a_prod_environment(samconfig: dict[str, Any]) -> None:
    assert {"default", "prod"} <= set(environments(samconfig))


def test_samconfig_validates_with_lint(samconfig: dict[str, Any]) -> None:
    assert samconfig["default"]["validate"]["parameters"].get("lint") is True


def test_samconfig_builds_cached_and_parallel_in_every_environment(
    samconfig: dict[str, Any],
) -> None:
    builds = {
        n: e.get("build", {}).get("parameters", {}) for n, e in environments(samconfig).items()
    }

    assert {n: (b.get("cached"), b.get("parallel")) for n, b in builds.items()} == dict.fromkeys(
        builds, (True, True)
    )


def test_samconfig_deploys_with_resolve_s3_in_every_environment(samconfig: dict[str, Any]) -> None:
    deploys = {
        n: e.get("deploy", {}).get("parameters", {}) for n, e in environments(samconfig).items()
    }

    assert {n: d.get("resolve_s3") for n, d in deploys.items()} == dict.fromkeys(deploys, True)


def test_samconfig_prod_deploys_with_deletion_protection(samconfig: dict[str, Any]) -> None:
    prod = overrides(samconfig["prod"]["deploy"]["parameters"])

    assert prod.get("DeletionProtection") == "true"
