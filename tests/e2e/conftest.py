"""End-to-end fixtures: one `sam build` for the whole session, and real local stacks (`local/run.py`) on free
ports, driven over HTTP exactly as a user drives `make run`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

BUILD_DIR = REPO / ".local" / "e2e-build"
READY_TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalStack:
    process: subprocess.Popen[str]
    url: str
    state: dict[str, Any]
    log: Path

    @property
    def api_key(self) -> str:
        return str(self.state["secrets"]["CRMSYNC_API_KEY"])

    @property
    def shopify_secret(self) -> str:
        return str(self.state["secrets"]["SHOPIFY_WEBHOOK_SECRET"])

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def local_crm(self, object_type: str) -> list[dict[str, Any]]:
        status, body = self.request("GET", f"/local-crm/{object_type}", headers={"x-api-key": self.api_key})
        assert status == 200, body
        return list(body["results"])

    def stop(self) -> int:
        if self.process.poll() is None:
            # SIGTERM, not SIGINT: a pytest started in the background (nohup, &) has SIGINT ignored, and its stacks'
            # ministack would outlive it; run.py stops the same way on either.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="session")
def sam_build() -> Path:
    """Build once for every stack of the session (`sam build` is the slow part of a deploy)."""
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "sam"), "build", "--build-dir", str(BUILD_DIR),
         "--cache-dir", str(REPO / ".local" / "sam-cache"), "--cached"],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return BUILD_DIR


@pytest.fixture(scope="session")
def start_stack(sam_build: Path) -> Iterator[Any]:
    """Start local stacks (each its own ministack, stack name and port); all are stopped at session end."""
    started: list[LocalStack] = []

    def start() -> LocalStack:
        name = f"e2e-{uuid.uuid4().hex[:8]}"
        port = free_port()
        log = REPO / ".local" / f"{name}.out"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CRMSYNC_BUILD_DIR": str(sam_build), "CRMSYNC_REUSE_BUILD": "1", "PYTHONUNBUFFERED": "1"}
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, str(REPO / "local" / "run.py"), "--stack-name", name, "--port", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        stack = LocalStack(process=process, url=f"http://127.0.0.1:{port}", state={}, log=log)
        started.append(stack)
        deadline = time.monotonic() + READY_TIMEOUT
        state_file = REPO / ".local" / name / "stack.json"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"local stack exited early:\n{log.read_text()[-3000:]}")
            if "[crmsync] READY" in log.read_text() and state_file.exists():
                stack.state = json.loads(state_file.read_text())
                return stack
            time.sleep(0.5)
        pytest.fail(f"local stack not ready in {READY_TIMEOUT} s:\n{log.read_text()[-3000:]}")

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def stack(start_stack: Any) -> LocalStack:
    return start_stack()
