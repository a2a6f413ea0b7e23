"""The sync routes and the sync function on moto: the documented events in events/ start an import, a backfill and a
reconciliation, the worker carries the import through the real SyncStore to the ingest queue, progress and reports
are served."""

from __future__ import annotations

import copy
import json

from api import app as api_app
from sync import app as sync_app


def call(event, lambda_context):
    answer = api_app.lambda_handler(event, lambda_context)
    return answer["statusCode"], json.loads(answer["body"])


def with_id(event, path_template: str, value: str):
    event = copy.deepcopy(event)
    event["pathParameters"] = {"id": value}
    event["path"] = path_template.replace("{id}", value)
    event["requestContext"]["path"] = event["path"]
    return event


def test_import_through_the_worker_with_progress(aws, load_event, lambda_context):
    # Given the documented import of two rows, one bad
    status, body = call(load_event("api-sync-import.json"), lambda_context)
    # Then it is accepted with the bad row reported by line
    assert status == 202
    assert (body["rows"], body["accepted"], body["rejected"]) == (2, 1, 1)
    assert body["errors"][0]["line"] == 3
    # When the sync function takes the job's message off the backfill queue
    messages = aws.receive_all(aws.env["BACKFILL_QUEUE_URL"])
    assert len(messages) == 1
    answer = sync_app.lambda_handler(aws.sqs_event(messages, "BackfillQueue"), lambda_context)
    assert answer["batchItemFailures"] == []
    # Then the valid row is on the ingest queue as an IngestMessage of the "import" source
    queued = [json.loads(m["Body"]) for m in aws.receive_all(aws.env["INGEST_QUEUE_URL"])]
    assert [(m["source"], m["topic"]) for m in queued] == [("import", "import.order")]
    # And the job reports done, 100 %
    unknown, _ = call(load_event("api-sync-job.json"), lambda_context)
    assert unknown == 404
    status, view = call(with_id(load_event("api-sync-job.json"), "/sync/jobs/{id}", body["job_id"]), lambda_context)
    assert status == 200
    assert (view["status"], view["percent"], view["counts"]["enqueued"]) == ("done", 100.0, 1)


def test_backfill_reconcile_and_metrics_routes(aws, load_event, lambda_context):
    # The documented backfill (a dry run) is queued as its first page
    status, body = call(load_event("api-sync-backfill.json"), lambda_context)
    assert status == 202
    pages = [json.loads(m["Body"]) for m in aws.receive_all(aws.env["BACKFILL_QUEUE_URL"])]
    assert pages == [{"kind": "page", "job_id": body["job_id"], "object": "orders", "page": 0, "cursor": ""}]
    # PayPal lists transactions (transaction search), and an object a source cannot list is a clear 400
    paypal = copy.deepcopy(load_event("api-sync-backfill.json"))
    paypal["body"], paypal["isBase64Encoded"] = json.dumps({"source": "paypal"}), False
    status, _ = call(paypal, lambda_context)
    assert status == 202
    assert [json.loads(m["Body"])["object"] for m in aws.receive_all(aws.env["BACKFILL_QUEUE_URL"])] == ["transactions"]
    paypal["body"] = json.dumps({"source": "paypal", "objects": ["orders"]})
    status, refused = call(paypal, lambda_context)
    assert status == 400
    assert "paypal cannot list orders" in refused["error"]
    # A reconciliation is queued and its report is readable at once
    status, run = call(load_event("api-sync-reconcile.json"), lambda_context)
    assert status == 202
    status, report = call(
        with_id(load_event("api-sync-reconcile-run.json"), "/sync/reconcile/runs/{id}", run["run_id"]), lambda_context
    )
    assert (status, report["status"], report["source"]) == (200, "queued", "woocommerce")
    assert call(load_event("api-sync-reconcile-run.json"), lambda_context)[0] == 404
    # When the worker runs it without API credentials, the report says so
    messages = aws.receive_all(aws.env["BACKFILL_QUEUE_URL"])
    sync_app.lambda_handler(aws.sqs_event(messages, "BackfillQueue"), lambda_context)
    status, report = call(
        with_id(load_event("api-sync-reconcile-run.json"), "/sync/reconcile/runs/{id}", run["run_id"]), lambda_context
    )
    assert (report["status"], "not configured" in report["error"]) == ("failed", True)
    # Metrics answer the three figures
    status, metrics = call(load_event("api-sync-metrics.json"), lambda_context)
    assert status == 200
    assert set(metrics) >= {"throughput", "accuracy", "automation_efficiency"}
