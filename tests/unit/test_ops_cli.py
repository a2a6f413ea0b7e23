"""The operator CLI (local/ops.py) against a scripted API: where it finds the URL and key, what it asks, how it pages,
what it prints and how it exits. No sockets: the transport is a fake."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from local import ops

LISTING = {
    "queues": [
        {
            "name": "ingest-dlq",
            "redrives_to": "ingest-queue",
            "depth": 1,
            "in_flight": 0,
            "truncated": False,
            "messages": [
                {
                    "message_id": "m-1",
                    "sent_at": "2026-11-20T15:15:44+00:00",
                    "summary": {"receipt_id": "shopify:demo:1", "topic": "orders/create"},
                    "error": {
                        "type": "ValidationError",
                        "message": "1 validation error(s) for ShopifyOrder: id: Field required",
                        "failed_at": "2026-11-20T15:20:00+00:00",
                        "attempts": 5,
                        "source_queue": "IngestQueue",
                    },
                    "body_bytes": 120,
                }
            ],
        }
    ]
}


class Api:
    """Answers scripted per (method, path); records every call."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []

    def __call__(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> tuple[int, Any]:
        self.calls.append((method, url, json.loads(body) if body else None, dict(headers)))
        return self.answers.pop(0)


def run(argv: list[str], api: Api, env: dict[str, str] | None = None, repo: Path | None = None) -> tuple[int, str]:
    out = io.StringIO()
    env = {"CRMSYNC_URL": "http://127.0.0.1:3000/", "CRMSYNC_API_KEY": "k"} if env is None else env
    code = ops.main(argv, transport=api, env=env, out=out, repo=repo or Path("/nonexistent"))
    return code, out.getvalue()


def test_dlq_list_prints_each_message_with_its_error():
    api = Api((200, LISTING))
    code, text = run(["dlq", "list", "--queue", "ingest-dlq", "--limit", "5"], api)
    assert code == 0
    [(method, url, body, headers)] = api.calls
    assert (method, url, body) == ("GET", "http://127.0.0.1:3000/sync/dlq?queue=ingest-dlq&limit=5", None)
    assert headers["x-api-key"] == "k"
    assert text.splitlines() == [
        "ingest-dlq -> ingest-queue: 1 message(s) (0 in flight)",
        "  m-1  sent 2026-11-20T15:15:44+00:00  receipt_id=shopify:demo:1 topic=orders/create",
        "      ValidationError: 1 validation error(s) for ShopifyOrder: id: Field required "
        "(attempt 5, failed 2026-11-20T15:20:00+00:00, from IngestQueue)",
    ]


def test_json_output_is_the_apis_answer():
    code, text = run(["--json", "dlq", "list"], Api((200, LISTING)))
    assert (code, json.loads(text)) == (0, LISTING)


def test_the_local_stacks_state_file_gives_url_and_key(tmp_path):
    state = tmp_path / ".local" / "mine" / "stack.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"url": "http://127.0.0.1:3111", "secrets": {"CRMSYNC_API_KEY": "from-file"}}))
    api = Api((200, {"queues": []}))
    code, _ = run(["dlq", "list"], api, env={"CRMSYNC_STACK": "mine"}, repo=tmp_path)
    assert code == 0
    assert api.calls[0][1].startswith("http://127.0.0.1:3111/sync/dlq")
    assert api.calls[0][3]["x-api-key"] == "from-file"
    # arguments win over the environment, which wins over the file
    api = Api((200, {"queues": []}))
    run(["--url", "http://127.0.0.1:9/Prod", "dlq", "list"], api, env={"CRMSYNC_STACK": "mine"}, repo=tmp_path)
    assert api.calls[0][1].startswith("http://127.0.0.1:9/Prod/sync/dlq")


def test_without_a_url_or_a_stack_it_says_what_to_do(capsys):
    code, _ = run(["dlq", "list"], Api(), env={})
    assert code == 2
    assert "make run" in capsys.readouterr().err


def redrive_answer(redriven: int, more: bool, **extra: Any) -> dict[str, Any]:
    return {
        "queue": "crm-dlq", "target": "crm-queue", "redriven": redriven, "failed": 0, "message_ids": [],
        "failed_ids": [], "not_found": [], "remaining": 0, "more": more, **extra,
    }  # fmt: skip


def test_redrive_of_a_whole_queue_calls_until_the_api_is_done():
    api = Api((202, redrive_answer(500, True)), (202, redrive_answer(20, False)))
    code, text = run(["dlq", "redrive", "--queue", "crm-dlq"], api)
    assert code == 0
    assert [c[2] for c in api.calls] == [{"queue": "crm-dlq"}, {"queue": "crm-dlq"}]
    assert text.splitlines()[-1] == "done: 520 redriven, 0 refused"


def test_redrive_of_some_messages_is_one_call():
    api = Api((202, redrive_answer(1, False, not_found=["m-9"])))
    code, text = run(["dlq", "redrive", "--queue", "crm-dlq", "--message-id", "m-1", "--message-id", "m-9"], api)
    assert code == 0
    assert api.calls[0][2] == {"queue": "crm-dlq", "message_ids": ["m-1", "m-9"]}
    assert "not in the DLQ: m-9" in text


def page(receipts: list[str], token: str | None) -> dict[str, Any]:
    return {
        "job_id": "rpl_1", "enqueued": len(receipts), "receipt_ids": receipts, "skipped": 0, "not_found": [],
        "next_token": token, "done": token is None,
    }  # fmt: skip


def test_replay_of_a_window_follows_the_tokens():
    api = Api((202, page(["r1", "r2"], "t1")), (202, page(["r3"], None)))
    code, text = run(["replay", "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-21T00:00:00Z", "--limit", "2"], api)
    assert code == 0
    window = {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z", "limit": 2}
    assert [c[2] for c in api.calls] == [window, {**window, "continuation_token": "t1"}]
    assert text.splitlines()[-1] == "done: 3 enqueued on the ingest queue"


def test_replay_stops_at_max_pages_and_says_how_to_resume():
    api = Api((202, page(["r1"], "t1")))
    code, text = run(["replay", "--from", "a", "--to", "b", "--max-pages", "1"], api)
    assert code == 0
    assert "resume with --token t1" in text


def test_replay_of_receipt_ids():
    api = Api((202, {**page(["r1"], None), "not_found": ["r2"]}))
    code, text = run(["replay", "--receipt-id", "r1", "--receipt-id", "r2"], api)
    assert (code, api.calls[0][2]) == (0, {"receipt_ids": ["r1", "r2"]})
    assert "not found" in text


@pytest.mark.parametrize(
    "argv",
    [["replay"], ["replay", "--from", "a"], ["replay", "--from", "a", "--to", "b", "--receipt-id", "r"]],
)
def test_replay_needs_a_window_or_receipts(argv):
    assert run(argv, Api())[0] == 2


def test_an_api_refusal_exits_1_with_its_reason(capsys):
    code, _ = run(["dlq", "redrive", "--queue", "crm-dlq"], Api((401, {"error": "invalid x-api-key"})))
    assert code == 1
    assert "401: invalid x-api-key" in capsys.readouterr().err


def test_only_http_urls_are_called():
    with pytest.raises(ops.UsageError):
        ops.http_transport("GET", "file:///etc/passwd", None, {})
