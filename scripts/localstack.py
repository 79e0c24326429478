"""Run the whole of fundrouter on this machine: no AWS account, no Docker.

ministack (a local AWS emulator, MIT) serves CloudFormation, Lambda, DynamoDB with
streams, the HTTP API with its JWT authorizer and Cognito. This script starts it
bound to 127.0.0.1, deploys the real template.yaml into it with `sam build` and
`sam deploy`, and writes the endpoints and client credentials to
``<state dir>/local.env`` (names in docs/api.md).

    python scripts/localstack.py up [--arch x86_64]   # idempotent: redeploys if running
    python scripts/localstack.py down
    python scripts/localstack.py logs

FUNDROUTER_LOCAL_PORT (default 4566) and FUNDROUTER_STATE_DIR (default .fundrouter)
let a test run keep its own stack beside a developer's.

FUNDROUTER_FAULTS="seed=7,rate=0.05[,kinds=a+b]" makes the deployed functions' AWS calls
fail as AWS does (tests/faults): after the deploy, tests/faults is published as a layer
of its own and added to every function with that variable; without it, both are taken
off again. template.yaml and the fundrouter layer never contain fault code.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
STACK_NAME = "fundrouter-local"
REGION = "us-east-1"
ARTIFACT_BUCKET = "fundrouter-local-artifacts"
FAULTS_ENV = "FUNDROUTER_FAULTS"
FAULTS_LAYER = "fundrouter-test-faults"
# ministack's Python worker adds each layer's python/lib/python3.x/site-packages as a
# site directory, so a .pth file there runs before the handler module is imported.
FAULTS_SITE = "python/lib/python3.13/site-packages"


class Stack:
    def __init__(self) -> None:
        self.port = int(os.environ.get("FUNDROUTER_LOCAL_PORT", "4566"))
        self.state_dir = ROOT / os.environ.get("FUNDROUTER_STATE_DIR", ".fundrouter")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.pid_file = self.state_dir / "ministack.pid"
        self.log_file = self.state_dir / "ministack.log"
        self.env_file = self.state_dir / "local.env"
        # ministack unpacks every function container's code into a temporary folder it
        # never removes (about 66 MB each): inside the state dir, `down` deletes them.
        self.tmp_dir = self.state_dir / "tmp"

    def aws_env(self) -> dict[str, str]:
        # sam build looks for python3.13 on PATH: put this interpreter's first.
        python_dir = os.path.dirname(os.path.realpath(sys.executable))
        return os.environ | {
            "PATH": f"{python_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "000000000000",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "SAM_CLI_TELEMETRY": "0",
        }

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="000000000000",
            aws_secret_access_key="local",  # noqa: S106 - ministack accepts any secret
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_ministack/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    # ------------------------------------------------------------------ up
    def start_emulator(self) -> None:
        if self.healthy():
            print(f"ministack already running on {self.endpoint}")
            return
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True)
        env = os.environ | {
            "GATEWAY_PORT": str(self.port),
            "TMPDIR": str(self.tmp_dir),
            # Loopback only, and no IoT mTLS listener on 0.0.0.0:8883.
            "BIND_HOST": "127.0.0.1",
            "IOT_MTLS_ENABLED": "0",
            "MINISTACK_HOST": "127.0.0.1",
            "LAMBDA_EXECUTOR": "local",
            # Persisted state breaks stream delivery in ministack 1.5.33: start fresh.
            "PERSIST_STATE": "0",
            "MINISTACK_REGION": REGION,
        }
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [str(ROOT / ".venv-ministack/bin/ministack")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives `make up`; `make down` stops the group
                cwd=self.state_dir,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + 60
        while not self.healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"ministack did not start; see {self.log_file}")
            time.sleep(0.2)
        print(f"ministack started on {self.endpoint} (pid {process.pid})")

    def deploy(self, arch: str) -> None:
        # Per stack: a test run, a bench run and make up may build at the same time.
        build_dir = self.state_dir / f"build-{arch}"
        sam = str(ROOT / ".venv-sam/bin/sam")
        overrides = [
            f"Architecture={arch}",
            "DeletionProtection=false",
            "LogRetentionDays=7",
            "AuthDomainPrefix=fundrouter-local",
            "LogLevel=INFO",
            # Webhooks to a receiver on this machine, retried within seconds.
            "WebhookAllowLoopbackHttp=true",
            "WebhookRetryBaseSeconds=1",
            "WebhookRetryMaxSeconds=2",
        ]
        # A build folder left by an older build makes sam's incremental copy fail
        # ("File exists"); the cache folder keeps rebuilds quick all the same.
        shutil.rmtree(build_dir, ignore_errors=True)
        # Run from the state dir: sam keeps dependency folders in ./.aws-sam/deps,
        # which concurrent builds from one working directory delete for each other.
        self._run(
            [
                sam,
                "build",
                "--cached",
                "--template-file",
                str(ROOT / "template.yaml"),
                "--build-dir",
                str(build_dir),
                "--cache-dir",
                str(self.state_dir / f"cache-{arch}"),
                "--parameter-overrides",
                *overrides,
            ],
            cwd=self.state_dir,
        )
        s3 = self.client("s3")
        if ARTIFACT_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        self._run(
            [
                sam,
                "deploy",
                "--template-file",
                str(build_dir / "template.yaml"),
                "--stack-name",
                STACK_NAME,
                "--s3-bucket",
                ARTIFACT_BUCKET,
                "--region",
                REGION,
                "--capabilities",
                "CAPABILITY_IAM",
                "CAPABILITY_AUTO_EXPAND",
                "--no-confirm-changeset",
                "--no-fail-on-empty-changeset",
                "--parameter-overrides",
                *overrides,
            ],
        )

    def _run(self, command: list[str], cwd: Path = ROOT) -> None:
        print("+", " ".join(command[:2]), "...", flush=True)
        done = subprocess.run(
            command, cwd=cwd, env=self.aws_env(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            sys.stdout.write(done.stdout[-4000:])
            sys.stderr.write(done.stderr[-4000:])
            sys.exit(f"{command[1]} failed (exit {done.returncode})")

    def faults_layer(self) -> str:
        """tests/faults as a layer: the package, and a .pth line that hooks it in."""
        buffer = BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            source = (ROOT / "tests" / "faults" / "__init__.py").read_text()
            archive.writestr(f"{FAULTS_SITE}/fundrouter_faults/__init__.py", source)
            archive.writestr(
                f"{FAULTS_SITE}/fundrouter_faults.pth",
                "import fundrouter_faults; fundrouter_faults.install_from_environment()\n",
            )
        published = self.client("lambda").publish_layer_version(
            LayerName=FAULTS_LAYER,
            Content={"ZipFile": buffer.getvalue()},
            CompatibleRuntimes=["python3.13"],
        )
        return str(published["LayerVersionArn"])

    def wire_faults(self, spec: str) -> None:
        """Add (spec given) or remove (empty) the fault layer on every function."""
        lam = self.client("lambda")
        resources = self.client("cloudformation").describe_stack_resources(StackName=STACK_NAME)
        names = [
            r["PhysicalResourceId"]
            for r in resources["StackResources"]
            if r["ResourceType"] == "AWS::Lambda::Function"
        ]
        layer = self.faults_layer() if spec else None
        for name in names:
            config = lam.get_function_configuration(FunctionName=name)
            layers = [x["Arn"] for x in config.get("Layers", []) if FAULTS_LAYER not in x["Arn"]]
            variables = dict(config.get("Environment", {}).get("Variables", {}))
            had = variables.pop(FAULTS_ENV, None)
            if layer is not None:
                layers.append(layer)
                variables[FAULTS_ENV] = spec
            elif had is None:
                continue
            lam.update_function_configuration(
                FunctionName=name, Layers=layers, Environment={"Variables": variables}
            )
        if spec:
            print(f"faults {spec!r} injected into {len(names)} functions (tests/faults)")

    def write_env(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        cognito = self.client("cognito-idp")

        def secret(client_id: str) -> str:
            described = cognito.describe_user_pool_client(
                UserPoolId=outputs["UserPoolId"], ClientId=client_id
            )
            return str(described["UserPoolClient"]["ClientSecret"])

        values = {
            # ministack serves each HTTP API under a path, no DNS needed.
            "FUNDROUTER_API_URL": f"{self.endpoint}/_aws/execute-api/{outputs['ApiId']}",
            "FUNDROUTER_TOKEN_URL": f"{self.endpoint}/oauth2/token",
            "FUNDROUTER_TENANT_CLIENT_ID": outputs["TenantClientId"],
            "FUNDROUTER_TENANT_CLIENT_SECRET": secret(outputs["TenantClientId"]),
            "FUNDROUTER_TENANT2_CLIENT_ID": outputs["SecondTenantClientId"],
            "FUNDROUTER_TENANT2_CLIENT_SECRET": secret(outputs["SecondTenantClientId"]),
            "FUNDROUTER_ADMIN_CLIENT_ID": outputs["AdminClientId"],
            "FUNDROUTER_ADMIN_CLIENT_SECRET": secret(outputs["AdminClientId"]),
            "FUNDROUTER_ORDERS_TABLE": outputs["OrdersTableName"],
            "FUNDROUTER_LINES_TABLE": outputs["LinesTableName"],
            "FUNDROUTER_AWS_ENDPOINT_URL": self.endpoint,
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        return values

    def up(self, arch: str, demo_lines: bool) -> None:
        self.start_emulator()
        self.deploy(arch)
        self.wire_faults(os.environ.get(FAULTS_ENV, "").strip())
        values = self.write_env()
        if demo_lines:  # so the order below finds a line: the CLI demo's funders
            demo = [sys.executable, "-m", "fundrouter_cli", "demo", "--lines-only"]
            subprocess.run(demo, cwd=ROOT, env=os.environ | values, check=True)
        env_path = os.path.relpath(self.env_file, Path.cwd())
        print(
            f"""
fundrouter is running locally.
  API:       {values["FUNDROUTER_API_URL"]}
  Token URL: {values["FUNDROUTER_TOKEN_URL"]}
  Settings:  {env_path}

Try it:
  set -a; . {env_path}; set +a
  TOKEN=$(curl -s -u "$FUNDROUTER_TENANT_CLIENT_ID:$FUNDROUTER_TENANT_CLIENT_SECRET" \\
    -d grant_type=client_credentials -d scope="fundrouter/orders.write fundrouter/orders.read" \\
    "$FUNDROUTER_TOKEN_URL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -X POST "$FUNDROUTER_API_URL/v1/orders" -H "authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' \\
    -d '{{"orderId": "shop-0001", "amount": 1250000, "currency": "CNY", "termMonths": 12,
         "product": "installment", "customer": {{"id": "c-829", "region": "GD", "creditGrade": "B"}}}}'
  curl -s "$FUNDROUTER_API_URL/v1/orders/shop-0001" -H "authorization: Bearer $TOKEN"

make logs follows the stack's logs; make down stops it."""
        )

    # ------------------------------------------------------------------ down, logs
    def down(self) -> None:
        if not self.pid_file.exists():
            print("no local stack started from here")
            return
        pid = int(self.pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                os.killpg(pid, 0)
                time.sleep(0.1)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid_file.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        print("local stack stopped")

    def logs(self) -> None:
        if not self.log_file.exists():
            sys.exit("no logs yet: run make up")
        os.execvp("tail", ["tail", "-n", "200", "-F", str(self.log_file)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "logs", "env"])
    parser.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    parser.add_argument(
        "--demo-lines", action="store_true", help="up: seed the CLI demo's lines (make up does)"
    )
    args = parser.parse_args()
    stack = Stack()
    if args.command == "up":
        stack.up(args.arch, args.demo_lines)
    elif args.command == "down":
        stack.down()
    elif args.command == "logs":
        stack.logs()
    else:
        print(json.dumps(stack.write_env(), indent=2))


if __name__ == "__main__":
    main()
