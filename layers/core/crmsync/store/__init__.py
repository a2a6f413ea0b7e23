"""Every boto3 call of crmsync lives in this package: tables, queue, bus, archive, secrets."""
