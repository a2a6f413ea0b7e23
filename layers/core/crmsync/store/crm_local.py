"""Storage of the built-in local CRM: records that read like a HubSpot portal's, in one DynamoDB table.

Items (pk / sk):
- REC#<type>                        / <id>    a record: properties (map of strings), assoc_<type> (string sets)
- KEY#<type>#<property>#<value>     / KEY     unique-key index: which record holds that id property value
- COUNTER                           / <type>  the last id handed out for that type
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import ConditionFailed, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class LocalRecord:
    id: str
    properties: dict[str, str]
    associations: dict[str, list[str]]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "properties": self.properties, "associations": self.associations}


@dataclass(frozen=True)
class LocalCrmTable:
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

    def find_id(self, object_type: str, id_property: str, value: str) -> str | None:
        answer = self._call(
            "get_item", Key={"pk": {"S": f"KEY#{object_type}#{id_property}#{value}"}, "sk": {"S": "KEY"}},
            ConsistentRead=True,
        )  # fmt: skip
        item = answer.get("Item")
        return str(item["record_id"]["S"]) if item else None

    def next_id(self, object_type: str) -> str:
        answer = self._call(
            "update_item",
            Key={"pk": {"S": "COUNTER"}, "sk": {"S": object_type}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return str(answer["Attributes"]["n"]["N"])

    def create(self, object_type: str, record_id: str, properties: dict[str, str]) -> None:
        self._call(
            "put_item",
            Item={
                "pk": {"S": f"REC#{object_type}"},
                "sk": {"S": record_id},
                "properties": {"M": {k: {"S": v} for k, v in properties.items()}},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def delete(self, object_type: str, record_id: str) -> None:
        self._call("delete_item", Key={"pk": {"S": f"REC#{object_type}"}, "sk": {"S": record_id}})

    def claim_key(self, object_type: str, id_property: str, value: str, record_id: str) -> str:
        """Publish the unique key for a new record; returns the id that holds the key (ours, or a racer's)."""
        try:
            self._call(
                "put_item",
                Item={
                    "pk": {"S": f"KEY#{object_type}#{id_property}#{value}"},
                    "sk": {"S": "KEY"},
                    "record_id": {"S": record_id},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ConditionFailed:
            return self.find_id(object_type, id_property, value) or record_id
        return record_id

    def update_properties(self, object_type: str, record_id: str, properties: dict[str, str]) -> None:
        if not properties:
            return
        names = {f"#p{i}": name for i, name in enumerate(properties)}
        values = {f":v{i}": {"S": value} for i, value in enumerate(properties.values())}
        self._call(
            "update_item",
            Key={"pk": {"S": f"REC#{object_type}"}, "sk": {"S": record_id}},
            UpdateExpression="SET " + ", ".join(f"#props.#p{i} = :v{i}" for i in range(len(properties))),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#props": "properties", **names},
            ExpressionAttributeValues=values,
        )

    def add_association(self, object_type: str, record_id: str, to_type: str, to_id: str) -> None:
        self._call(
            "update_item",
            Key={"pk": {"S": f"REC#{object_type}"}, "sk": {"S": record_id}},
            UpdateExpression="ADD #a :ids",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#a": f"assoc_{to_type}"},
            ExpressionAttributeValues={":ids": {"SS": [to_id]}},
        )

    def remove_association(self, object_type: str, record_id: str, to_type: str, to_id: str) -> None:
        self._call(
            "update_item",
            Key={"pk": {"S": f"REC#{object_type}"}, "sk": {"S": record_id}},
            UpdateExpression="DELETE #a :ids",
            ExpressionAttributeNames={"#a": f"assoc_{to_type}"},
            ExpressionAttributeValues={":ids": {"SS": [to_id]}},
        )

    def point_key(self, object_type: str, id_property: str, value: str, record_id: str) -> None:
        """Make the unique key name this record (after a merge took the record that held it)."""
        self._call(
            "put_item",
            Item={
                "pk": {"S": f"KEY#{object_type}#{id_property}#{value}"},
                "sk": {"S": "KEY"},
                "record_id": {"S": record_id},
            },
        )

    def delete_key(self, object_type: str, id_property: str, value: str, record_id: str) -> None:
        """Drop a unique key, if it still names this record (erasure: the key holds the value, e.g. an email)."""
        try:
            self._call(
                "delete_item",
                Key={"pk": {"S": f"KEY#{object_type}#{id_property}#{value}"}, "sk": {"S": "KEY"}},
                ConditionExpression="record_id = :r",
                ExpressionAttributeValues={":r": {"S": record_id}},
            )
        except ConditionFailed:
            return

    def remove_properties(self, object_type: str, record_id: str, names: list[str]) -> None:
        if not names:
            return
        self._call(
            "update_item",
            Key={"pk": {"S": f"REC#{object_type}"}, "sk": {"S": record_id}},
            UpdateExpression="REMOVE " + ", ".join(f"#props.#p{i}" for i in range(len(names))),
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#props": "properties", **{f"#p{i}": name for i, name in enumerate(names)}},
        )

    def get(self, object_type: str, record_id: str) -> LocalRecord | None:
        answer = self._call(
            "get_item", Key={"pk": {"S": f"REC#{object_type}"}, "sk": {"S": record_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return _record(item) if item else None

    def list(self, object_type: str) -> list[LocalRecord]:
        records: list[LocalRecord] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"REC#{object_type}"}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("query", **kwargs)
            records.extend(_record(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(records, key=lambda r: int(r.id) if r.id.isdigit() else 0)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _record(item: dict[str, Any]) -> LocalRecord:
    properties = {k: v["S"] for k, v in item.get("properties", {}).get("M", {}).items()}
    associations = {
        name.removeprefix("assoc_"): sorted(value["SS"], key=lambda i: int(i) if i.isdigit() else 0)
        for name, value in item.items()
        if name.startswith("assoc_")
    }
    return LocalRecord(id=item["sk"]["S"], properties=properties, associations=associations)
