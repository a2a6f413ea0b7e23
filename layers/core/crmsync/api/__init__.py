"""The operator HTTP API (DESIGN.md section 4): /health and, with the local backend, /local-crm/*."""
