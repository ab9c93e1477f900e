"""Realistic fine-tuning payloads for the benchmarks, made from the recorded ones in tests/.

The stand-in server renders its answers from these, and the structuring micro-benchmark
structures the very same dicts, so every runner parses what a real OpenAI answer looks like:
every field of a job, nested method and hyperparameters, errors, integrations, metadata.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parent.parent / "tests" / "payloads"

#: How often each recorded job shape appears in the 10,000-job list, out of 20: mostly finished
#: jobs, as an organisation's history is, with failures, running jobs and DPO jobs mixed in.
_MIX = (
    ("job_openai_succeeded.json", 14),
    ("job_openai_failed.json", 2),
    ("job_wandb_integrations.json", 2),
    ("job_dpo_method.json", 2),
)
_NOT_STRICT = "job_dpo_method.json"
#: The list's newest job; each older one was created a minute earlier.
_NEWEST = 1_763_600_000


def _recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return data


def job_id(index: int) -> str:
    """The id of the ``index``-th job of the list (ids as long as OpenAI's: 24 characters)."""
    return f"ftjob-bench{index:013d}"


def list_jobs(count: int, *, strict: bool = False) -> list[dict[str, Any]]:
    """``count`` jobs, newest first, cycling through the recorded shapes.

    ``strict`` leaves out the DPO shape: as OpenAI really sends it (``error`` with null members,
    ``hyperparameters: null``) it fails ``openai``'s own ``model_validate``, which the SDK only
    skips because it builds its answers with ``construct``.
    """
    shapes: list[dict[str, Any]] = []
    for name, weight in _MIX:
        if not (strict and name == _NOT_STRICT):
            shapes.extend([_recorded(name)] * weight)
    jobs = []
    for index in range(count):
        job = copy.deepcopy(shapes[index % len(shapes)])
        created = _NEWEST - 60 * index
        job["id"] = job_id(index)
        job["created_at"] = created
        if job.get("finished_at") is not None:
            job["finished_at"] = created + 3551
        if job.get("estimated_finish") is not None:
            job["estimated_finish"] = created + 3600
        job["seed"] = 1_000_000 + index
        jobs.append(job)
    return jobs


def watched_job(status: str) -> dict[str, Any]:
    """A job of the watch workload as seen in ``status`` (its id is the ``@ID@`` placeholder)."""
    job = _recorded("job_openai_succeeded.json")
    job["id"] = "@ID@"
    job["status"] = status
    if status != "succeeded":
        job.update(finished_at=None, fine_tuned_model=None, result_files=[], trained_tokens=None)
    if status == "running":
        job["estimated_finish"] = job["created_at"] + 3600
    return job


def events(count: int) -> list[dict[str, Any]]:
    """``count`` events of one job, newest first, cycling through the recorded messages."""
    recorded = _recorded("events_list.json")["data"]
    out = []
    for index in range(count):
        event = copy.deepcopy(recorded[index % len(recorded)])
        event["id"] = f"ftevent-bench{index:012d}"
        event["created_at"] = _NEWEST - index
        out.append(event)
    return out
