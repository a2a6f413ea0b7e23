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


def test_a_file_too_big_for_the_api_is_uploaded_then_imported_by_the_worker(aws, load_event, lambda_context):
    import requests

    # Given the documented request for an upload URL
    status, upload = call(load_event("api-sync-import-upload.json"), lambda_context)
    assert (status, upload["method"], upload["headers"]) == (201, "PUT", {"Content-Type": "text/csv"})
    # And a started import before the file is there is refused with the reason
    start = copy.deepcopy(load_event("api-sync-import.json"))
    start["body"], start["isBase64Encoded"] = None, False
    start["queryStringParameters"] = {"upload_id": upload["upload_id"]}
    status, refused = call(start, lambda_context)
    assert (status, "PUT the file" in refused["error"]) == (400, True)
    # When the operator PUTs a CSV of 60 rows (one bad) to the presigned URL and starts the import
    rows = [f"order,B-{n},2026-11-20T10:00:00Z,b{n}@example.com,10.00,EUR,paid" for n in range(60)]
    rows[7] = "order,B-7,,b7@example.com,10.00,EUR,paid"
    body = ("type,id,updated_at,email,total,currency,status\n" + "\n".join(rows) + "\n").encode()
    put = requests.put(upload["url"], data=body, headers=upload["headers"], timeout=10)
    assert put.status_code == 200
    status, job = call(start, lambda_context)
    # Then the job exists at once, validating, and asking again names the same job
    assert (status, job["status"]) == (202, "validating")
    assert call(start, lambda_context)[1]["job_id"] == job["job_id"]
    # When the sync function works the backfill queue until it is empty
    while messages := aws.receive_all(aws.env["BACKFILL_QUEUE_URL"]):
        assert (
            sync_app.lambda_handler(aws.sqs_event(messages, "BackfillQueue"), lambda_context)["batchItemFailures"] == []
        )
    # Then every valid row went to the ingest queue once, and the job reports the bad row by line
    queued = [json.loads(m["Body"]) for m in aws.receive_all(aws.env["INGEST_QUEUE_URL"])]
    assert len(queued) == 59
    status, view = call(with_id(load_event("api-sync-job.json"), "/sync/jobs/{id}", job["job_id"]), lambda_context)
    assert (view["status"], view["counts"]["enqueued"], view["rows"]) == ("done", 59, 60)
    assert [(e["line"], e["error"].split(":")[0]) for e in view["errors"]] == [(9, "updated_at")]


def test_an_uploaded_file_that_is_not_utf8_fails_its_job_with_the_reason(aws, load_event, lambda_context):
    import requests

    # Given an uploaded file in another encoding, imported
    _, upload = call(load_event("api-sync-import-upload.json"), lambda_context)
    requests.put(upload["url"], data="type,id\norder,Zoë\n".encode("latin-1"), headers=upload["headers"], timeout=10)
    start = copy.deepcopy(load_event("api-sync-import.json"))
    start["body"], start["isBase64Encoded"] = None, False
    start["queryStringParameters"] = {"upload_id": upload["upload_id"]}
    _, job = call(start, lambda_context)
    # When the worker reads it
    sync_app.lambda_handler(
        aws.sqs_event(aws.receive_all(aws.env["BACKFILL_QUEUE_URL"]), "BackfillQueue"), lambda_context
    )
    # Then the job failed, saying why, and nothing was queued
    _, view = call(with_id(load_event("api-sync-job.json"), "/sync/jobs/{id}", job["job_id"]), lambda_context)
    assert (view["status"], view["error"]) == ("failed", "the file is not UTF-8")
    assert aws.receive_all(aws.env["INGEST_QUEUE_URL"]) == []


def test_an_upload_id_that_was_never_given_is_a_400(aws, load_event, lambda_context):
    start = copy.deepcopy(load_event("api-sync-import.json"))
    start["body"], start["isBase64Encoded"] = None, False
    for upload_id in ("up_nope", "../../raw/shopify", "up_" + "0" * 20):
        start["queryStringParameters"] = {"upload_id": upload_id}
        status, refused = call(start, lambda_context)
        assert status == 400, upload_id
        assert "upload" in refused["error"]
