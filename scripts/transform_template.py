"""Print template.yaml as SAM transforms it (JSON), offline: what CloudFormation
would deploy, including the roles, policies and mappings SAM generates.

    .venv-sam/bin/python scripts/transform_template.py [template.yaml]

Runs in the SAM virtualenv (samtranslator); the template tests call it.
"""

import json
import os
import sys
from pathlib import Path

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicyNames:
    """Policy names in `Policies:` would be looked up in IAM; offline, none resolve."""

    def load(self) -> dict[str, str]:
        return {}


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
    template = yaml_parse(path.read_text())
    parameters = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    # As `sam package` would: local code folders become S3 locations.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://packaged/{props[key].strip('/')}"
    # Pseudo parameters come from a boto3 session's region; no credentials are needed.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        transformed = transform(template, parameters, NoManagedPolicyNames())
    except InvalidDocumentException as error:
        sys.exit("; ".join(str(cause) for cause in error.causes))
    json.dump(transformed, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
