"""The one Logger and Metrics of every function (bottom floor: imports nothing of crmsync).

Tracing is left to Lambda's own X-Ray integration (`Tracing: Active`): the Powertools Tracer needs
aws-xray-sdk, which would ship a second botocore in the layer and slow every cold start.

Personal data never belongs in a log line: code logs ids, kinds and counts, and validation errors by field and reason
only (crmsync.failures.log_failure). As a last guard, every line the logger writes is masked on its way out: email
addresses and E.164 phone numbers (in the message, extra keys and exception text alike) become <email> and <phone>.
"""

import json
import re
from typing import Any

from aws_lambda_powertools import Logger, Metrics

_EMAIL = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_PHONE = re.compile(r"\+[1-9][0-9]{7,14}\b")  # E.164, as crmsync stores phones


def mask_personal_data(text: str) -> str:
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


def _masked_json(log: Any) -> str:
    # Powertools' own serializer, masked
    return mask_personal_data(json.dumps(log, default=str, separators=(",", ":"), ensure_ascii=False))


logger = Logger(json_serializer=_masked_json)
metrics = Metrics()
