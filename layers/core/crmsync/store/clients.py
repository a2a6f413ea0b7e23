"""Lazily created, cached boto3 clients: one per service per container, created on first use."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@functools.cache
def _client(service: str) -> Any:
    import boto3  # lazily: a function that never touches AWS never pays for boto3

    return boto3.client(service)  # type: ignore[call-overload]


def dynamodb() -> DynamoDBClient:
    return _client("dynamodb")  # type: ignore[no-any-return]


def s3() -> S3Client:
    return _client("s3")  # type: ignore[no-any-return]


def sqs() -> SQSClient:
    return _client("sqs")  # type: ignore[no-any-return]


def events() -> EventBridgeClient:
    return _client("events")  # type: ignore[no-any-return]


def reset() -> None:
    """Forget every cached client (tests call this between moto sessions)."""
    _client.cache_clear()
