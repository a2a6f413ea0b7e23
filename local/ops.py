"""Operator tools on the command line: the dead-letter queues and replay, through the HTTP API (operator key).

    python local/ops.py dlq list [--queue ingest-dlq|crm-dlq|events-dlq] [--limit 10]
    python local/ops.py dlq redrive --queue ingest-dlq [--message-id ID ...]
    python local/ops.py replay --from 2026-11-20T00:00:00Z --to 2026-11-21T00:00:00Z [--limit 100]
    python local/ops.py replay --receipt-id ID [--receipt-id ID ...]
    python local/ops.py rules dry-run --since 2026-11-01T00:00:00Z --until 2026-11-21T00:00:00Z [--file F]
    python local/ops.py backfill --source woocommerce [--object orders] [--since ...] [--dry-run] [--watch]
    python local/ops.py jobs show JOB_ID [--watch]          (progress bar, counts, rate, ETA; dry runs: preview)
    python local/ops.py reconcile [--source shopify] [--full] | reconcile show RUN_ID   (the drift report)

Where: --url and --api-key, else the environment (CRMSYNC_URL, CRMSYNC_API_KEY), else the running local stack's
state file .local/<stack>/stack.json that `make run` writes (stack: --stack, else CRMSYNC_STACK, else crmsync-local).
For a stack in AWS, CRMSYNC_URL is the ApiUrl output (with the stage) and CRMSYNC_API_KEY the operator key.

A redrive of a whole queue and a replay of a window are paged by the API; this tool calls again until the API says
it is done (at most --max-pages calls). --json prints the API's answers as they are, one JSON document a line.
Exit status: 0 done, 1 the API refused or failed, 2 bad arguments or no stack to talk to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
DEFAULT_STACK = "crmsync-local"
QUEUES = ("ingest-dlq", "crm-dlq", "events-dlq", "rules-dlq")

# (method, url, JSON body or None, headers) -> (status, parsed JSON answer)
Transport = Callable[[str, str, bytes | None, Mapping[str, str]], tuple[int, Any]]


class OpsError(Exception):
    """The API refused or failed; the message says what it answered."""


class UsageError(Exception):
    """Nothing to talk to, or arguments that do not fit together."""


def http_transport(method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> tuple[int, Any]:
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise UsageError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text or b"null")
        except ValueError:
            return exc.code, {"error": text.decode(errors="replace")[:500]}
    except urllib.error.URLError as exc:
        raise OpsError(f"cannot reach {url}: {exc.reason}") from exc


def stack_state(stack: str, repo: Path = REPO) -> dict[str, Any] | None:
    path = repo / ".local" / stack / "stack.json"
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def endpoint(args: argparse.Namespace, env: Mapping[str, str], repo: Path = REPO) -> tuple[str, str]:
    """(base URL, operator key): arguments, else environment, else the local stack's state file."""
    url, key = args.url or env.get("CRMSYNC_URL"), args.api_key or env.get("CRMSYNC_API_KEY")
    if not url or not key:
        stack = args.stack or env.get("CRMSYNC_STACK") or DEFAULT_STACK
        state = stack_state(stack, repo)
        if state is None:
            raise UsageError(
                f"no URL or key: pass --url and --api-key, set CRMSYNC_URL and CRMSYNC_API_KEY, "
                f"or start the local stack {stack!r} (`make run`)"
            )
        url = url or state["url"]
        key = key or state["secrets"]["CRMSYNC_API_KEY"]
    return str(url).rstrip("/"), str(key)


class Client:
    def __init__(self, base_url: str, api_key: str, transport: Transport = http_transport) -> None:
        self.base_url, self.api_key, self.transport = base_url, api_key, transport

    def call(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"x-api-key": self.api_key, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, answer = self.transport(method, url, data, headers)
        if status >= 400:
            reason = answer.get("error") if isinstance(answer, dict) else answer
            raise OpsError(f"{method} {path} answered {status}: {reason}")
        return answer


# --- commands -----------------------------------------------------------------------------------------------------
def dlq_list(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    answer = client.call("GET", "/sync/dlq", query={"queue": args.queue, "limit": args.limit})
    if args.json:
        print(json.dumps(answer), file=out)
        return
    for queue in answer["queues"]:
        shown = len(queue["messages"])
        more = f", {shown} shown" if queue.get("truncated") else ""
        print(
            f"{queue['name']} -> {queue['redrives_to']}: {queue['depth']} message(s)"
            f" ({queue.get('in_flight', 0)} in flight{more})",
            file=out,
        )
        for message in queue["messages"]:
            summary = message.get("summary") or {}
            about = " ".join(f"{k}={v}" for k, v in summary.items() if v is not None)
            print(f"  {message['message_id']}  sent {message.get('sent_at') or '?'}  {about}", file=out)
            error = message.get("error") or {}
            where = ", ".join(
                part
                for part in (
                    f"attempt {error['attempts']}" if error.get("attempts") else "",
                    f"failed {error['failed_at']}" if error.get("failed_at") else "",
                    f"from {error['source_queue']}" if error.get("source_queue") else "",
                )
                if part
            )
            kind = f"{error['type']}: " if error.get("type") else ""
            print(f"      {kind}{error.get('message', '')}" + (f" ({where})" if where else ""), file=out)


def dlq_redrive(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    body: dict[str, Any] = {"queue": args.queue}
    if args.message_id:
        body["message_ids"] = args.message_id
    if args.limit:
        body["limit"] = args.limit
    total, failed = 0, 0
    for _ in range(args.max_pages):
        answer = client.call("POST", "/sync/dlq/redrive", body=body)
        total, failed = total + answer["redriven"], failed + answer["failed"]
        if args.json:
            print(json.dumps(answer), file=out)
        else:
            print(f"{answer['queue']} -> {answer['target']}: {answer['redriven']} redriven", file=out)
            if answer["failed"]:
                print(
                    f"  refused by {answer['target']} (still in the DLQ): {', '.join(answer['failed_ids'])}", file=out
                )
            if answer["not_found"]:
                print(f"  not in the DLQ: {', '.join(answer['not_found'])}", file=out)
        if args.message_id or not answer["more"] or not answer["redriven"]:
            break
    if not args.json:
        print(f"done: {total} redriven, {failed} refused", file=out)


def replay(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.receipt_id and (args.start or args.end):
        raise UsageError("give --from and --to, or --receipt-id, not both")
    body: dict[str, Any]
    if args.receipt_id:
        body = {"receipt_ids": args.receipt_id}
    elif args.start and args.end:
        body = {"from": args.start, "to": args.end, "limit": args.limit}
        if args.token:
            body["continuation_token"] = args.token
    else:
        raise UsageError("give --from and --to (UTC, ISO 8601), or one --receipt-id or more")
    total = 0
    for _ in range(args.max_pages):
        answer = client.call("POST", "/sync/replay", body=body)
        total += answer["enqueued"]
        if args.json:
            print(json.dumps(answer), file=out)
        else:
            print(f"replay {answer['job_id']}: {answer['enqueued']} enqueued", file=out)
            for receipt_id in answer["receipt_ids"]:
                print(f"  {receipt_id}", file=out)
            if answer["not_found"]:
                print(
                    f"  not found (unknown, or older than the receipt retention): {', '.join(answer['not_found'])}",
                    file=out,
                )
            if answer.get("skipped"):
                print(f"  skipped (no receipt id or topic recorded): {answer['skipped']}", file=out)
        token = answer.get("next_token")
        if not token:
            break
        body["continuation_token"] = token
    else:
        if not args.json:
            print(f"stopped after {args.max_pages} page(s); resume with --token {body['continuation_token']}", file=out)
    if not args.json:
        print(f"done: {total} enqueued on the ingest queue", file=out)


def rules_dry_run(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    body: dict[str, Any] = {"since": args.since, "until": args.until, "limit": args.limit, "details": args.details}
    if args.rules and args.file:
        raise UsageError("give --rules (a deployed rule set) or --file (a rule file to try), not both")
    if args.rules:
        body["rules"] = args.rules
    if args.file:
        try:
            body["rules_yaml"] = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    answer = client.call("POST", "/rules/dry-run", body=body)
    if args.json:
        print(json.dumps(answer), file=out)
        return
    stop = f" (stopped early: {answer['truncated']})" if answer.get("truncated") else ""
    head = f"rule set {answer['rule_set']} v{answer['rule_set_version']}: {answer['events_seen']} event(s){stop}"
    print(head, file=out)
    for rule_id, rule in answer["rules"].items():
        efficiency = rule.get("automation_efficiency")
        print(
            f"  {rule_id}: {rule['events_seen']} seen, {rule['matched']} matched, {rule['would_apply']} would act"
            f" ({rule['actions']} action(s), E={'-' if efficiency is None else efficiency}"
            + (f", {rule['errors']} condition error(s))" if rule.get("errors") else ")"),
            file=out,
        )
    for event in answer.get("events") or []:
        acting = [d for d in event["decisions"] if d["outcome"] == "would apply"]
        if acting:
            print(f"  {event['source_version']} {event['detail_type']} {event['key']} (risk {event['risk']['score']})",
                  file=out)  # fmt: skip
            for decision in acting:
                actions = ", ".join(a["action"] for a in decision.get("actions", []))
                print(f"      {decision['rule_id']} v{decision['rule_version']}: {actions}", file=out)


def progress_bar(percent: float | None, width: int = 30) -> str:
    if percent is None:
        return "[" + "?" * width + "]   ?%"
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent:5.1f}%"


def show_job(view: Mapping[str, Any], out: TextIO) -> None:
    counts = view.get("counts") or {}
    eta = view.get("eta")
    print(
        f"{view['job_id']} {view['status']:<8} {progress_bar(view.get('percent'))} "
        f"{counts.get('records', 0)} records, {view.get('rate', 0)}/s, eta {'?' if eta is None else f'{eta:.0f}s'}",
        file=out,
    )
    if "preview" in view:
        preview = view["preview"]
        print("  preview: " + ", ".join(f"{k} {preview[k]}" for k in ("create", "update", "noop", "invalid")), file=out)
    for error in (view.get("errors") or [])[:20]:
        print(f"  line {error['line']}: {error['error']}", file=out)


def jobs_show(client: Client, args: argparse.Namespace, out: TextIO, *, sleep: Any = None) -> None:
    import time

    pause = sleep or time.sleep
    while True:
        view = client.call("GET", f"/sync/jobs/{urllib.parse.quote(args.job_id, safe='')}")
        if args.json:
            print(json.dumps(view), file=out)
        else:
            show_job(view, out)
        if not getattr(args, "watch", False) or view.get("status") != "running":
            return
        pause(args.interval)


def backfill(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    body = {
        "source": args.source, "objects": args.object or [], "since": args.since, "until": args.until,
        "dry_run": args.dry_run, "match_policy": args.match_policy,
    }  # fmt: skip
    answer = client.call("POST", "/sync/backfill", body={k: v for k, v in body.items() if v is not None})
    print(json.dumps(answer) if args.json else f"backfill job {answer['job_id']} started", file=out)
    if args.watch:
        args.job_id = answer["job_id"]
        jobs_show(client, args, out)


def reconcile(client: Client, args: argparse.Namespace, out: TextIO) -> None:
    if args.run_id:
        report = client.call("GET", f"/sync/reconcile/runs/{urllib.parse.quote(args.run_id, safe='')}")
        if args.json:
            print(json.dumps(report), file=out)
            return
        print(f"{report['run_id']} {report['source']} {report['status']} {report.get('error', '')}".rstrip(), file=out)
        for name, drift in (report.get("objects") or {}).items():
            figures = ", ".join(f"{k} {drift.get(k, 0)}" for k in ("checked", "missing", "stale", "deleted",
                                                                   "repaired", "failed"))  # fmt: skip
            print(f"  {name}: {figures}", file=out)
        return
    body = {"full": args.full, **({"source": args.source} if args.source else {})}
    answer = client.call("POST", "/sync/reconcile", body=body)
    print(json.dumps(answer) if args.json else f"reconciliation run(s) queued: {answer['run_ids']}", file=out)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ops.py", description=__doc__.splitlines()[0] if __doc__ else None)
    root.add_argument("--url", help="API base URL (env CRMSYNC_URL; default: the local stack's)")
    root.add_argument("--api-key", help="operator key (env CRMSYNC_API_KEY; default: the local stack's)")
    root.add_argument("--stack", help=f"local stack whose state file to read (env CRMSYNC_STACK; {DEFAULT_STACK})")
    root.add_argument("--json", action="store_true", help="print the API's answers as JSON")
    commands = root.add_subparsers(dest="command", required=True)

    dlq = commands.add_parser("dlq", help="dead-letter queues").add_subparsers(dest="action", required=True)
    listing = dlq.add_parser("list", help="messages of each DLQ with their errors (nothing is consumed)")
    listing.add_argument("--queue", choices=QUEUES)
    listing.add_argument("--limit", type=int, default=10, help="messages shown per queue (1-100)")
    listing.set_defaults(run=dlq_list)
    again = dlq.add_parser("redrive", help="move messages back to the queue they came from")
    again.add_argument("--queue", choices=QUEUES, required=True)
    again.add_argument("--message-id", action="append", help="only this message (repeat for several); default all")
    again.add_argument("--limit", type=int, help="messages per API call when redriving all (1-1000)")
    again.add_argument("--max-pages", type=int, default=100, help="API calls at most")
    again.set_defaults(run=dlq_redrive)

    play = commands.add_parser("replay", help="put archived webhooks back through the pipeline")
    play.add_argument("--from", dest="start", help="window start, inclusive (ISO 8601; UTC without an offset)")
    play.add_argument("--to", dest="end", help="window end, exclusive")
    play.add_argument("--receipt-id", action="append", help="replay this receipt (repeat; at most 100)")
    play.add_argument("--limit", type=int, default=100, help="receipts per API call (1-500)")
    play.add_argument("--token", help="continue a window replay from this continuation token")
    play.add_argument("--max-pages", type=int, default=1000, help="API calls at most")
    play.set_defaults(run=replay)

    rules = commands.add_parser("rules", help="automation rules").add_subparsers(dest="action", required=True)
    dry = rules.add_parser("dry-run", help="what a rule set would have done with a period's events (writes nothing)")
    dry.add_argument("--since", required=True, help="period start, inclusive (ISO 8601 with offset, e.g. ...Z)")
    dry.add_argument("--until", required=True, help="period end, exclusive")
    dry.add_argument("--rules", help="a rule set shipped with the stack (config/rules/<name>.yaml); default: deployed")
    dry.add_argument("--file", help="a rule file of your own to try, sent as its text")
    dry.add_argument("--limit", type=int, default=1000, help="events at most (1-5000)")
    dry.add_argument("--details", action=argparse.BooleanOptionalAction, default=True, help="per-event decisions")
    dry.set_defaults(run=rules_dry_run)

    fill = commands.add_parser("backfill", help="load a source's history through the normal path (resumable)")
    fill.add_argument("--source", required=True, choices=("shopify", "woocommerce", "stripe", "paypal"))
    fill.add_argument("--object", action="append", help="orders, customers, payment_intents, events (repeat)")
    fill.add_argument("--since", help="changed at or after (ISO 8601)")
    fill.add_argument("--until", help="changed before (ISO 8601)")
    fill.add_argument("--dry-run", action="store_true", help="preview creates / updates / no-ops, write nothing")
    fill.add_argument("--match-policy", choices=("newer_wins", "missing_only"))
    fill.add_argument("--watch", action="store_true", help="show progress until the job ends")
    fill.add_argument("--interval", type=float, default=2.0, help="seconds between progress reads")
    fill.set_defaults(run=backfill)
    jobs = commands.add_parser("jobs", help="backfill and import jobs").add_subparsers(dest="action", required=True)
    show = jobs.add_parser("show", help="a job's progress bar, counts, rate and ETA")
    show.add_argument("job_id")
    show.add_argument("--watch", action="store_true", help="refresh until the job ends")
    show.add_argument("--interval", type=float, default=2.0)
    show.set_defaults(run=jobs_show)
    rec = commands.add_parser("reconcile", help="reconcile now, or `reconcile show RUN_ID` for a drift report")
    rec.add_argument("show", nargs="?", choices=("show",))
    rec.add_argument("run_id", nargs="?")
    rec.add_argument("--source", choices=("shopify", "woocommerce", "stripe", "paypal"))
    rec.add_argument("--full", action="store_true", help="ignore the cursor: list everything, find deletions")
    rec.set_defaults(run=reconcile)
    return root


def main(
    argv: list[str] | None = None,
    *,
    transport: Transport = http_transport,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    repo: Path = REPO,
) -> int:
    args = parser().parse_args(argv)
    out = out or sys.stdout
    try:
        url, key = endpoint(args, os.environ if env is None else env, repo)
        args.run(Client(url, key, transport), args, out)
    except UsageError as exc:
        print(f"ops.py: {exc}", file=sys.stderr)
        return 2
    except OpsError as exc:
        print(f"ops.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
