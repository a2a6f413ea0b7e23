"""`make bench` on a tiny scale: every step runs through the code it measures, so a change that breaks a bench (a
port method the bench's doubles lack, a renamed field) fails `make test` instead of the next `make bench`. Nothing
here is timed or judged: the figures of a tiny run mean nothing, only that each was produced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import crm_load, run, soak


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every size of the bench cut to a few items (REPS stays: best_of binds it at import); results under tmp_path."""
    for name, value in {"CORPUS_SIZE": 60, "SOURCE_CORPUS_SIZE": 30, "COLD_RUNS": 1, "STREAM_LAG": 5}.items():
        monkeypatch.setattr(run, name, value)
    monkeypatch.setattr(run, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(crm_load, "CUSTOMERS", 20)
    monkeypatch.setattr(crm_load, "ORDERS", 40)
    monkeypatch.setattr(soak, "SOAK_PEOPLE", 40)
    return tmp_path / "results.json"


def test_every_bench_step_produces_its_figures(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # When the whole bench runs at a tiny scale
    assert run.main([]) == 0
    # Then every step produced its figures, with a value, into the results file
    report = json.loads(tiny.read_text())
    keys = {figure["key"] for figure in report["figures"]}
    sources = ("convert.shopify.", "convert.woocommerce.", "convert.stripe.", "convert.paypal.")
    others = ("convert.accuracy", "cold_start.", "ingest.", "crm.hubspot.", "crm.salesforce.", "soak.")
    for prefix in ("convert.", *sources, *others):
        assert any(key.startswith(prefix) for key in keys), f"no figure {prefix}* in {sorted(keys)}"
    assert all(figure["value"] is not None for figure in report["figures"] if figure["status"] != "INFO")
    # And the steps that check correctness found it: conversion accuracy and the soak's CRM against its truth
    by_key = {figure["key"]: figure for figure in report["figures"]}
    assert by_key["convert.accuracy"]["value"] == 1.0
    assert by_key["soak.correct"]["status"] == "PASS", by_key["soak.correct"]["detail"]
