"""The sync table: backfill and import jobs with their checkpoints, reconciliation runs and cursors, daily metrics.

Items (pk / sk):
- JOB#<id>        / JOB               a job: kind, source, objects, status, request, preview, errors (JSON `doc`)
- JOB#<id>        / CURSOR#<object>   one object type's checkpoint: next_page (the page the next message must
                                      carry), cursor (the source's cursor of that page), done, counts (JSON)
- RUN#<id>        / RUN               a reconciliation run's drift report (JSON `doc`)
- MARK#<name>     / MARK              a reconciliation cursor: the change time a source was reconciled up to
- GONE#<source>   / <state pk>        an entity known deleted at the source, recorded either way it became known:
                                      by a full reconciliation that found it no longer listed and reported it (its
                                      deletion webhook sent): run_id, at; or by convert, from the deletion webhook the
                                      source sent (a Notice with `deletes`): receipt_id, at (JSON `doc`). Later runs
                                      skip it, and it goes when the source lists the entity again (restored) or state
                                      no longer has it
- METRIC          / <day>#<source>    counters of one source and UTC day (numbers, added atomically)

The checkpoint is advanced by a write conditional on next_page: of two workers that processed the same page (a
redelivered message), only one moves it on, so counts are added once and no page is skipped; a page whose
checkpoint is already past it is known done.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import ConditionFailed, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Checkpoint:
    object_type: str
    next_page: int
    cursor: str
    done: bool
    counts: dict[str, int]
    total: int | None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def add_counts(counts: dict[str, int], delta: dict[str, int]) -> dict[str, int]:
    merged = dict(counts)
    for key, value in delta.items():
        merged[key] = merged.get(key, 0) + value
    return merged


@dataclass(frozen=True)
class SyncStore:
    table: str
    client: DynamoDBClient | None = None

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._ddb, operation)(TableName=self.table, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def _doc(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True).get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    # --- jobs ------------------------------------------------------------------------------------------------
    def create_job(self, job_id: str, doc: dict[str, Any]) -> None:
        self._call(
            "put_item",
            Item={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}, "doc": {"S": _dumps(doc)}},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return self._doc(f"JOB#{job_id}", "JOB")

    def update_job(self, job_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge top-level fields into the job's document (last writer wins per call; callers change disjoint
        fields: status by the last page, preview by each page under its own key)."""
        doc = self.get_job(job_id)
        if doc is None:
            raise KeyError(job_id)
        doc.update(changes)
        self._call("put_item", Item={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}, "doc": {"S": _dumps(doc)}})
        return doc

    def init_cursor(self, job_id: str, object_type: str, total: int | None = None) -> None:
        item: dict[str, Any] = {
            "pk": {"S": f"JOB#{job_id}"},
            "sk": {"S": f"CURSOR#{object_type}"},
            "next_page": {"N": "0"},
            "cursor": {"S": ""},
            "done": {"BOOL": False},
            "counts": {"S": "{}"},
        }
        if total is not None:
            item["total"] = {"N": str(total)}
        with contextlib.suppress(ConditionFailed):  # already started: keep its progress
            self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        answer = self._call(
            "query",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
            ExpressionAttributeValues={":pk": {"S": f"JOB#{job_id}"}, ":c": {"S": "CURSOR#"}},
            ConsistentRead=True,
        )
        return [_checkpoint(item) for item in answer.get("Items", [])]

    def checkpoint(self, job_id: str, object_type: str) -> Checkpoint | None:
        item = self._call(
            "get_item", Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": f"CURSOR#{object_type}"}}, ConsistentRead=True
        ).get("Item")
        return _checkpoint(item) if item else None

    def advance(
        self,
        job_id: str,
        object_type: str,
        *,
        page: int,
        next_cursor: str | None,
        delta: dict[str, int],
        total: int | None = None,
    ) -> bool:
        """Record page `page` as done (its counts added, the next page's cursor kept); False when another worker
        already did (the checkpoint is not at `page`)."""
        current = self.checkpoint(job_id, object_type)
        if current is None or current.next_page != page:
            return False
        values: dict[str, Any] = {
            ":page": {"N": str(page)},
            ":next": {"N": str(page + 1)},
            ":cursor": {"S": next_cursor or ""},
            ":done": {"BOOL": next_cursor is None},
            ":counts": {"S": _dumps(add_counts(current.counts, delta))},
        }
        update = "SET next_page = :next, #cursor = :cursor, done = :done, counts = :counts"
        if total is not None:
            update += ", #total = :total"
            values[":total"] = {"N": str(total)}
        try:
            self._call(
                "update_item",
                Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": f"CURSOR#{object_type}"}},
                UpdateExpression=update,
                ConditionExpression="next_page = :page",
                ExpressionAttributeNames={"#cursor": "cursor", **({"#total": "total"} if total is not None else {})},
                ExpressionAttributeValues=values,
            )
        except ConditionFailed:
            return False
        return True

    # --- reconciliation --------------------------------------------------------------------------------------
    def put_run(self, run_id: str, doc: dict[str, Any]) -> None:
        self._call("put_item", Item={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}, "doc": {"S": _dumps(doc)}})

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return self._doc(f"RUN#{run_id}", "RUN")

    def get_mark(self, name: str) -> str | None:
        doc = self._doc(f"MARK#{name}", "MARK")
        return str(doc["value"]) if doc else None

    def set_mark(self, name: str, value: str) -> None:
        self._call(
            "put_item", Item={"pk": {"S": f"MARK#{name}"}, "sk": {"S": "MARK"}, "doc": {"S": _dumps({"value": value})}}
        )

    def deletions(self, source: str) -> set[str]:
        """State pks of the entities of `source` recorded as deleted there (GONE#<source>)."""
        found: set[str] = set()
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"GONE#{source}"}},
            "ProjectionExpression": "sk",
            "ConsistentRead": True,
        }
        while True:
            answer = self._call("query", **kwargs)
            found.update(item["sk"]["S"] for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def record_deletion(self, source: str, key: str, run_id: str, at: str) -> None:
        """Record that the run `run_id` reported entity `key` (a state pk) deleted at `source` (again: overwritten)."""
        doc = {"run_id": run_id, "at": at}
        self._call("put_item", Item={"pk": {"S": f"GONE#{source}"}, "sk": {"S": key}, "doc": {"S": _dumps(doc)}})

    def record_deletion_notice(self, source: str, key: str, receipt_id: str, at: str) -> None:
        """Record that the deletion webhook `receipt_id` said entity `key` (a state pk) is deleted at `source`. A
        deletion recorded already (by a run, or by an earlier delivery of the webhook) is kept as it is, so a
        redelivery changes nothing."""
        doc = {"receipt_id": receipt_id, "at": at}
        item = {"pk": {"S": f"GONE#{source}"}, "sk": {"S": key}, "doc": {"S": _dumps(doc)}}
        with contextlib.suppress(ConditionFailed):  # recorded already
            self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")

    def clear_deletion(self, source: str, key: str) -> None:
        """Forget a recorded deletion (none recorded: nothing happens)."""
        self._call("delete_item", Key={"pk": {"S": f"GONE#{source}"}, "sk": {"S": key}})

    # --- metrics ---------------------------------------------------------------------------------------------
    def add_metrics(self, day: str, source: str, delta: dict[str, int]) -> None:
        delta = {k: v for k, v in delta.items() if v}
        if not delta:
            return
        names = {f"#m{i}": name for i, name in enumerate(delta)}
        self._call(
            "update_item",
            Key={"pk": {"S": "METRIC"}, "sk": {"S": f"{day}#{source}"}},
            UpdateExpression="ADD " + ", ".join(f"#m{i} :m{i}" for i in range(len(delta))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":m{i}": {"N": str(v)} for i, v in enumerate(delta.values())},
        )

    def metrics(self, first_day: str, last_day: str) -> list[tuple[str, str, dict[str, int]]]:
        """(day, source, counters) of every day in [first_day, last_day], by day then source."""
        found: list[tuple[str, str, dict[str, int]]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":pk": {"S": "METRIC"}, ":a": {"S": first_day}, ":b": {"S": f"{last_day}#~"}},
        }
        while True:
            answer = self._call("query", **kwargs)
            for item in answer.get("Items", []):
                day, source = item["sk"]["S"].split("#", 1)
                counters = {k: int(v["N"]) for k, v in item.items() if "N" in v}
                found.append((day, source, counters))
            if "LastEvaluatedKey" not in answer:
                return found
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _checkpoint(item: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        object_type=item["sk"]["S"].removeprefix("CURSOR#"),
        next_page=int(item["next_page"]["N"]),
        cursor=item["cursor"]["S"],
        done=bool(item["done"]["BOOL"]),
        counts=json.loads(item["counts"]["S"]),
        total=int(item["total"]["N"]) if "total" in item else None,
    )
