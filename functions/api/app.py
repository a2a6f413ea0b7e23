"""Operator API handler: every route but /webhooks/* (crmsync.api.routes)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.api.routes import app
from crmsync.observability import logger


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
