"""`make run`: the whole crmsync stack on this machine, with no Docker and no AWS account.

ministack (a local AWS emulator) is started on 127.0.0.1, the real template.yaml is built with
`sam build` and deployed into it with `sam deploy`, the secrets are seeded, and only then a small
forwarder opens http://127.0.0.1:$CRMSYNC_PORT in front of the deployed REST API. Ctrl-C stops
everything this script started. See DESIGN.md section 5 and the README.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOCAL_DIR = REPO / ".local"
REGION = "us-east-1"
LOOPBACK = "127.0.0.1"

# Env var -> (template output naming the secret, default used when the env var is unset).
SECRETS: dict[str, tuple[str, str]] = {
    "SHOPIFY_WEBHOOK_SECRET": ("ShopifyWebhookSecretId", "local-shopify-secret"),
    "STRIPE_WEBHOOK_SECRET": ("StripeWebhookSecretId", "whsec_local-stripe-secret"),
    "WOOCOMMERCE_WEBHOOK_SECRET": ("WooCommerceWebhookSecretId", "local-woocommerce-secret"),
    "PAYPAL_WEBHOOK_ID": ("PayPalWebhookIdSecretId", "LOCAL-PAYPAL-WEBHOOK-ID"),
    "CRMSYNC_API_KEY": ("OperatorApiKeySecretId", "local-operator-key"),
}

# Env var -> template parameter: which CRM the local stack writes to (e.g. CRM_BACKEND=hubspot with
# HUBSPOT_BASE_URL=http://127.0.0.1:8765, a HubSpot-compatible server such as local/hubspot_fake.py).
CRM_PARAMETERS = {
    "CRM_BACKEND": "CrmBackend",
    "HUBSPOT_BASE_URL": "HubSpotBaseUrl",
    "HUBSPOT_RATE_LIMIT": "HubSpotRateLimit",
    "HUBSPOT_DAILY_LIMIT": "HubSpotDailyLimit",
    "CRM_FLUSH_DELAY_SECONDS": "CrmFlushDelaySeconds",  # > 0: the CRM writes go through the flusher
    "CRMSYNC_RULES": "RuleSet",  # the automation rule set (config/rules/<name>.yaml; none = off)
}


def crm_parameters() -> list[str]:
    """sam deploy parameter overrides for the CRM settings set in the environment."""
    return [f"{parameter}={os.environ[env]}" for env, parameter in CRM_PARAMETERS.items() if os.environ.get(env)]


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def log(message: str) -> None:
    print(f"[crmsync] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


def safe_aws_env(endpoint: str, work: Path) -> dict[str, str]:
    """Environment for every AWS call made here: dummy credentials, no profile, loopback only."""
    host = urllib.parse.urlparse(endpoint).hostname
    if host != LOOPBACK:
        raise SystemExit(f"refusing to deploy: endpoint {endpoint} is not on {LOOPBACK}")
    empty = work / "empty-aws-file"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 - ministack dummy credentials
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=endpoint,
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_CONFIG_FILE=str(empty),
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    return env


class Stack:
    """One local crmsync stack: ministack process, deployment and forwarder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.stack_name
        self.port: int = args.port
        self.ms_port: int = args.ministack_port or free_port()
        self.work = LOCAL_DIR / self.name
        self.build_dir = Path(args.build_dir) if args.build_dir else self.work / "build"
        self.endpoint = f"http://{LOOPBACK}:{self.ms_port}"
        self.ministack: subprocess.Popen[bytes] | None = None
        self.forwarder: ThreadingHTTPServer | None = None
        self.outputs: dict[str, str] = {}
        self.secrets: dict[str, str] = {}

    # --- ministack -----------------------------------------------------------------------------
    def start_ministack(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work / "ministack-tmp", ignore_errors=True)
        (self.work / "ministack-tmp").mkdir(parents=True, exist_ok=True)
        self.env = safe_aws_env(self.endpoint, self.work)
        binary = REPO / ".venv-ministack" / "bin" / "ministack"
        if not binary.exists():
            raise SystemExit("ministack is not installed: run `make install` (or `make run`, which does it)")
        ms_env = dict(self.env)
        ms_env.update(
            GATEWAY_PORT=str(self.ms_port),
            BIND_HOST=LOOPBACK,
            IOT_MTLS_ENABLED="0",
            TMPDIR=str(self.work / "ministack-tmp"),
            LOG_LEVEL=os.environ.get("MINISTACK_LOG_LEVEL", "WARNING"),
        )
        ms_env.pop("AWS_ENDPOINT_URL", None)
        logfile = (self.work / "ministack.log").open("wb")
        self.ministack = subprocess.Popen(
            [str(binary)], env=ms_env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.ministack.poll() is not None:
                raise SystemExit(f"ministack exited early; see {self.work / 'ministack.log'}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(LOOPBACK, self.ms_port, timeout=1)
                conn.request("GET", "/_ministack/health")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.1)
        raise SystemExit("ministack did not become healthy within 30 s")

    def client(self, service: str) -> Any:
        """A boto3 client that can only reach this stack's ministack, with its dummy credentials."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - ministack dummy credentials
            region_name=REGION,
        ).client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    # --- sam build / deploy --------------------------------------------------------------------
    def run_tool(self, cmd: list[str], logname: str) -> None:
        env = dict(self.env)
        # sam build needs python3.12 on PATH: the dev virtualenv's interpreter is that version.
        env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        logpath = self.work / logname
        with logpath.open("wb") as out:
            rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        if rc != 0:
            sys.stderr.write(logpath.read_text(errors="replace")[-4000:])
            raise SystemExit(f"`{' '.join(cmd[:2])}` failed (exit {rc}); full log: {logpath}")

    def build(self) -> None:
        if (self.build_dir / "template.yaml").exists() and os.environ.get("CRMSYNC_REUSE_BUILD") == "1":
            log(f"reusing the build in {self.build_dir}")
            return
        sam = str(REPO / ".venv" / "bin" / "sam")
        self.run_tool(
            [sam, "build", "--build-dir", str(self.build_dir), "--cache-dir", str(LOCAL_DIR / "sam-cache"), "--cached"],
            "sam-build.log",
        )

    def deploy(self) -> None:
        bucket = f"{self.name.lower()}-sam-artifacts"
        self.client("s3").create_bucket(Bucket=bucket)
        sam = str(REPO / ".venv" / "bin" / "sam")
        self.run_tool(
            [
                sam, "deploy",
                "--template-file", str(self.build_dir / "template.yaml"),
                "--stack-name", self.name,
                "--s3-bucket", bucket,
                "--region", REGION,
                "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
                "--no-confirm-changeset", "--no-fail-on-empty-changeset",
                "--parameter-overrides", f"LogLevel={os.environ.get('CRMSYNC_LOG_LEVEL', 'INFO')}",
                f"RetryBackoffSeconds={os.environ.get('CRMSYNC_RETRY_BACKOFF_SECONDS', '2')}",
                *crm_parameters(),
            ],
            "sam-deploy.log",
        )  # fmt: skip
        stack = self.client("cloudformation").describe_stacks(StackName=self.name)["Stacks"][0]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def after_deploy(self) -> None:
        """Seed secrets and close the emulator's known gaps (README: local stack gaps)."""
        secrets = self.client("secretsmanager")
        for env_name, (output, default) in SECRETS.items():
            value = os.environ.get(env_name) or default
            secrets.put_secret_value(SecretId=self.outputs[output], SecretString=value)
            self.secrets[env_name] = value
        if os.environ.get("HUBSPOT_ACCESS_TOKEN"):  # CRM_BACKEND=hubspot: the token goes to its secret, never printed
            secrets.put_secret_value(
                SecretId=self.outputs["HubSpotTokenSecretId"], SecretString=os.environ["HUBSPOT_ACCESS_TOKEN"]
            )
        # CRM_BACKEND=salesforce: instance URL + access token go to the credentials secret as JSON, never printed
        if os.environ.get("SALESFORCE_INSTANCE_URL") and os.environ.get("SALESFORCE_ACCESS_TOKEN"):
            credentials = {
                "instance_url": os.environ["SALESFORCE_INSTANCE_URL"],
                "access_token": os.environ["SALESFORCE_ACCESS_TOKEN"],
            }
            secrets.put_secret_value(
                SecretId=self.outputs["SalesforceCredentialsSecretId"], SecretString=json.dumps(credentials)
            )
        # Gap: ministack does not apply a template's TimeToLiveSpecification.
        self.client("dynamodb").update_time_to_live(
            TableName=self.outputs["ReceiptsTableName"],
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )

    # --- forwarder -----------------------------------------------------------------------------
    def api_host(self) -> str:
        return f"{self.outputs['ApiId']}.execute-api.localhost:{self.ms_port}"

    def wait_for_api(self) -> None:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(LOOPBACK, self.ms_port, timeout=30)
                conn.request("GET", f"/{self.outputs['Stage']}/health", headers={"Host": self.api_host()})
                status = conn.getresponse().status
                if status == 200:
                    return
            time.sleep(0.3)
        raise SystemExit(f"the deployed API did not answer /health (last status {status})")

    def start_forwarder(self) -> None:
        stack = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                headers["Host"] = stack.api_host()
                conn = http.client.HTTPConnection(LOOPBACK, stack.ms_port, timeout=60)
                try:
                    conn.request(self.command, f"/{stack.outputs['Stage']}{self.path}", body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    payload = json.dumps({"error": f"local stack unreachable: {exc.__class__.__name__}"}).encode()
                    self.send_response(502)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = forward

            def log_message(self, format: str, *args: Any) -> None:
                if os.environ.get("CRMSYNC_FORWARDER_LOG") == "1":
                    super().log_message(format, *args)

        self.forwarder = ThreadingHTTPServer((LOOPBACK, self.port), Forward)
        threading.Thread(target=self.forwarder.serve_forever, daemon=True).start()

    # --- lifecycle -----------------------------------------------------------------------------
    def write_state(self) -> None:
        state = {
            "stack_name": self.name,
            "url": f"http://{LOOPBACK}:{self.port}",
            "ministack_endpoint": self.endpoint,
            "region": REGION,
            "outputs": self.outputs,
            "secrets": self.secrets,
            "pid": os.getpid(),
        }
        (self.work / "stack.json").write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        if self.forwarder:
            self.forwarder.shutdown()
            self.forwarder.server_close()
        if self.ministack and self.ministack.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.ministack.pid, signal.SIGTERM)
            try:
                self.ministack.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.ministack.pid, signal.SIGKILL)
        # ministack leaves its Lambda worker folders behind on SIGTERM.
        shutil.rmtree(self.work / "ministack-tmp", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.work / "stack.json").unlink()


def print_welcome(stack: Stack, seconds: float) -> None:
    url = f"http://{LOOPBACK}:{stack.port}"
    s = stack.secrets
    sample = "events/payloads/shopify-orders-create.json"
    secret = s["SHOPIFY_WEBHOOK_SECRET"]
    demo = "" if stack.name == "crmsync-local" else f"CRMSYNC_STACK={stack.name} "
    print(
        f"""
crmsync is running: stack {stack.name}, ready in {seconds:.1f} s (Ctrl-C stops it)

  API            {url}            (GET /health)
  Webhooks       {url}/webhooks/{{shopify,woocommerce,stripe,paypal}}
  Local AWS      {stack.endpoint}   (ministack; logs in {stack.work.relative_to(REPO)}/)

Secrets in use (set the env vars before `make run` to change them):
  SHOPIFY_WEBHOOK_SECRET={s["SHOPIFY_WEBHOOK_SECRET"]}
  STRIPE_WEBHOOK_SECRET={s["STRIPE_WEBHOOK_SECRET"]}
  WOOCOMMERCE_WEBHOOK_SECRET={s["WOOCOMMERCE_WEBHOOK_SECRET"]}
  PAYPAL_WEBHOOK_ID={s["PAYPAL_WEBHOOK_ID"]}
  CRMSYNC_API_KEY={s["CRMSYNC_API_KEY"]}

Send a signed Shopify orders/create webhook:
  curl -sS {url}/webhooks/shopify -H 'Content-Type: application/json' \\
    -H 'X-Shopify-Topic: orders/create' -H 'X-Shopify-Shop-Domain: demo.myshopify.com' \\
    -H "X-Shopify-Event-Id: $(date +%s%N)" \\
    -H "X-Shopify-Hmac-Sha256: $(openssl dgst -sha256 -hmac '{secret}' -binary < {sample} | base64)" \\
    --data-binary @{sample}

(`make send-sample SOURCE=woocommerce` or `SOURCE=stripe` sends theirs, signed the same way.)

Then see the contact and the deal in the local CRM:
  curl -sS -H 'x-api-key: {s["CRMSYNC_API_KEY"]}' {url}/local-crm/contacts
  curl -sS -H 'x-api-key: {s["CRMSYNC_API_KEY"]}' {url}/local-crm/deals

Reconciliation and backfill against a local WooCommerce shop (drift made, found and repaired; records/s):
  {demo}make demo-reconcile      # RECORDS=2000 orders for the backfill figure, RECORDS=0 skips it
""",
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stack-name", default=os.environ.get("CRMSYNC_STACK", "crmsync-local"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CRMSYNC_PORT", "3000")))
    parser.add_argument("--ministack-port", type=int, default=int(os.environ.get("MINISTACK_PORT", "0")))
    parser.add_argument("--build-dir", default=os.environ.get("CRMSYNC_BUILD_DIR"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if port_in_use(args.port):
        raise SystemExit(f"port {args.port} is already in use: stop what listens there or set CRMSYNC_PORT")
    stack = Stack(args)
    started = time.monotonic()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        log(f"starting ministack on {stack.endpoint}")
        stack.start_ministack()
        log("sam build")
        stack.build()
        log(f"sam deploy --stack-name {stack.name}")
        stack.deploy()
        stack.after_deploy()
        stack.wait_for_api()
        stack.start_forwarder()
        stack.write_state()
        print_welcome(stack, time.monotonic() - started)
        log("READY")
        while not stopping.is_set():
            time.sleep(0.5)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
