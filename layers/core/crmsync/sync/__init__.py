"""Scheduled and manual sync: source API clients, resumable backfill, bulk import, reconciliation and metrics."""
