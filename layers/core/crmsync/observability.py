"""The one Logger and Metrics of every function (bottom floor: imports nothing of crmsync).

Tracing is left to Lambda's own X-Ray integration (`Tracing: Active`): the Powertools Tracer needs
aws-xray-sdk, which would ship a second botocore in the layer and slow every cold start.
"""

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
