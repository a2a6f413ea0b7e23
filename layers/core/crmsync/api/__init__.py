"""The operator HTTP API (DESIGN.md section 4): /health, /customers, /sync/dlq and /sync/replay, and, with the local
backend, /local-crm/*."""
