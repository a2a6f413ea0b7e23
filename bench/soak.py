"""Soak: the fault suite's pipeline (tests/faults) at 20,000+ webhook events, with the same faults and the same checks.

Every event is delivered 1-3 times, shuffled; stores, bus and CRM fail at the suite's rates; a buggy converter
release dead-letters its poison until the fix is deployed and the DLQs are redriven. The run must end equal to the
scenario's ground truth. Reported: events per second through the whole in-process pipeline (ingest, convert, CRM
writer, on the in-memory fakes), and, as a ratio against a baseline run in the same process, that throughput
against json.loads + json.dumps of every delivered body (the least any pipeline must do with a webhook).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

from tests.faults import scenario
from tests.faults.harness import FaultRates, run
from tests.faults.truth import assert_crm_is_the_truth

SOAK_PEOPLE = 3_400  # about 20,400 webhook events
SOAK_SEED = 20261127


def soak(make_figure: Callable[..., Any]) -> list[Any]:
    world = scenario.build_world(SOAK_PEOPLE, SOAK_SEED, poison_every=60)
    plan = scenario.delivery_plan(world, SOAK_SEED)
    # Powertools prints a metrics blob per handler invocation: thousands of lines nobody reads here.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        pipeline, report, before_fix = run(
            world, plan, seed=SOAK_SEED, rates=FaultRates(), paypal=scenario.paypal_signer()
        )
    problems: list[str] = []
    try:
        assert_crm_is_the_truth(world, pipeline)
    except AssertionError as error:
        problems.append(f"CRM differs from the ground truth: {str(error)[:300]}")
    for name, queue in (("ingest", pipeline.ingest_queue), ("crm", pipeline.crm_queue)):
        left = len(queue.messages()) + (len(queue.dlq.messages()) if queue.dlq else 0)
        if left:
            problems.append(f"{left} message(s) left in the {name} queue or its DLQ")
    duplicates = sum(len(ids) - 1 for ids in pipeline.crm.duplicate_contacts_by_email().values())

    started = time.perf_counter()
    for delivery in plan:
        json.dumps(json.loads(delivery.body))
    baseline = time.perf_counter() - started
    per_second = report.events / report.seconds
    figures = report.as_json() | {"people": len(world.people), "poisoned_orders": len(world.poisoned)}
    detail = (
        f"{report.events} events, {report.deliveries} deliveries ({report.duplicates_delivered} duplicates), "
        f"{sum(report.faults.values())} faults injected, {len(before_fix)} poison messages dead-lettered and "
        f"redriven; {report.seconds:.1f} s"
    )
    return [
        make_figure(
            key="soak.correct",
            label="soak: CRM equals the ground truth, nothing lost",
            value=float(not problems),
            unit="ok",
            budget="= 1",
            status="PASS" if not problems else "FAIL",
            detail="; ".join(problems) or f"{len(world.deals)} deals, {len(world.people)} contacts, no duplicate",
            data=figures | {"problems": problems, "duplicate_contacts": duplicates},
        ),
        make_figure(
            key="soak.events_per_second",
            label="  context: soak throughput (events/s, in-process on fakes)",
            value=per_second,
            unit="ev/s",
            budget="report only",
            status="INFO",
            detail=detail,
            data={"events": report.events, "seconds": report.seconds},
        ),
        make_figure(
            key="soak.throughput_vs_json_roundtrip",
            label="  context: soak pipeline / json.loads+dumps of every delivery",
            value=baseline / report.seconds,
            unit="x",
            budget="report only",
            status="INFO",
            detail=f"baseline {baseline * 1e6 / len(plan):.1f} us per delivery, pipeline "
            f"{report.seconds * 1e6 / len(plan):.1f} us per delivery",
        ),
    ]
