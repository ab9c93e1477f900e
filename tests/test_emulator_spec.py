"""The emulator's JSON validates against the official OpenAPI spec's component schemas."""

from __future__ import annotations

import io
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest
import yaml  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from finetune_async.emulator import Emulator, Timing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping

from tests.conftest import SPEC_PATH

SPEC_URI = "urn:openai-finetune-facts"
SPEC: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
REGISTRY: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(SPEC))

AUTH = {"Authorization": "Bearer test"}
BASE_MODEL = "gpt-4o-mini-2024-07-18"
CHAT = "/v1/chat/completions"
TIMING = Timing()
#: Seconds from creation to the end of a job on a 10-example file (batch size 1, 3 epochs).
JOB_STEPS = 30
JOB_TOTAL = TIMING.validate + TIMING.queue + JOB_STEPS * TIMING.step + TIMING.finalize

Json = dict[str, Any]


# --- validation --------------------------------------------------------------------------------


def schema_errors(name: str, instance: object) -> list[str]:
    """Every way ``instance`` breaks ``#/components/schemas/{name}`` (empty: it conforms)."""
    assert name in SPEC["components"]["schemas"], name
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}, registry=REGISTRY
    )
    return sorted(f"{e.json_path}: {e.message}" for e in validator.iter_errors(instance))


def assert_conforms(name: str, instance: object) -> None:
    """``instance`` validates against the spec's schema ``name``."""
    assert [] == schema_errors(name, instance), orjson.dumps(instance).decode()[:2000]


# --- driving the emulator ------------------------------------------------------------------------


class Api:
    """Raw HTTP calls to one running emulator."""

    def __init__(self, emu: Emulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session

    async def ok(self, method: str, path: str, *, json: object = None, **params: str) -> Json:
        """Send one request that must succeed; return its JSON body."""
        async with self.session.request(
            method, self.emu.url + path, json=json, params=params or None
        ) as resp:
            body = orjson.loads(await resp.read())
            assert 200 == resp.status, body
            assert isinstance(body, dict)
            return body

    async def upload(self, data: bytes, purpose: str, filename: str = "data.jsonl") -> Json:
        """Upload ``data``; return the file object."""
        form = aiohttp.FormData()
        form.add_field("purpose", purpose)
        form.add_field("file", io.BytesIO(data), filename=filename)
        async with self.session.post(self.emu.url + "/files", data=form) as resp:
            body = orjson.loads(await resp.read())
            assert 200 == resp.status, body
            assert isinstance(body, dict)
            return body

    async def job(self, job_id: str) -> Json:
        """GET the job."""
        return await self.ok("GET", f"/fine_tuning/jobs/{job_id}")

    async def batch(self, batch_id: str) -> Json:
        """GET the batch."""
        return await self.ok("GET", f"/batches/{batch_id}")

    async def create_job(self, training: bytes, **extra: Any) -> Json:
        """Upload a training file and create a job on it."""
        uploaded = await self.upload(training, "fine-tune", "train.jsonl")
        body = {"model": BASE_MODEL, "training_file": uploaded["id"], **extra}
        return await self.ok("POST", "/fine_tuning/jobs", json=body)

    async def create_batch(self, lines: Iterable[Mapping[str, Any] | bytes]) -> Json:
        """Upload a batch input file and create a chat batch on it."""
        data = b"".join(
            (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
        )
        uploaded = await self.upload(data, "batch", "input.jsonl")
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": CHAT,
            "completion_window": "24h",
            "metadata": {"suite": "spec"},
        }
        return await self.ok("POST", "/batches", json=body)


@asynccontextmanager
async def running(timing: Timing | None = None) -> AsyncIterator[Api]:
    """A stopped-clock emulator and a session on it."""
    async with (
        Emulator(speed=0, seed=17, timing=timing) as emu,
        aiohttp.ClientSession(headers=AUTH, timeout=aiohttp.ClientTimeout(total=10)) as session,
    ):
        yield Api(emu, session)


def jsonl(rows: Iterable[object]) -> bytes:
    """Rows as JSON lines."""
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def supervised_file(examples: int = 10) -> bytes:
    """A valid supervised chat training file."""
    return jsonl(
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
        for i in range(examples)
    )


def dpo_file(examples: int = 10) -> bytes:
    """A valid DPO training file."""
    return jsonl(
        {
            "input": {"messages": [{"role": "user", "content": f"q{i}"}]},
            "preferred_output": [{"role": "assistant", "content": f"good {i}"}],
            "non_preferred_output": [{"role": "assistant", "content": f"bad {i}"}],
        }
        for i in range(examples)
    )


def chat_line(custom_id: str) -> Json:
    """A well-formed chat-completions batch line."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": custom_id}]},
    }


# --- the validator itself ------------------------------------------------------------------------


def test_the_validator_rejects_instances_that_break_a_schema() -> None:
    """The spec's refs resolve and a wrong instance is reported (the checks below can fail)."""
    assert [] != schema_errors("FineTuningJob", {"object": "fine_tuning.job"})
    assert [] != schema_errors("Batch", {"id": "b", "object": "batch", "status": "bogus"})
    bad_errors = {"object": "list", "data": [{"code": 1, "line": "two"}]}
    nested = schema_errors("Batch", {"errors": bad_errors})
    assert any("$.errors.data[0].code" in e for e in nested)
    assert any("$.errors.data[0].line" in e for e in nested)
    assert [] == schema_errors(
        "Model", {"id": "m", "object": "model", "created": 1, "owned_by": "o"}
    )


# --- fine-tuning jobs ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_job_in_every_status_of_its_life_matches_the_job_schema() -> None:
    """validating_files, queued, running and succeeded jobs, and their lists, match the spec."""
    async with running() as api:
        created = await api.create_job(
            supervised_file(),
            suffix="spec",
            seed=42,
            metadata={"suite": "spec"},
            integrations=[{"type": "wandb", "wandb": {"project": "spec", "tags": ["a"]}}],
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        )
        job_id = created["id"]
        seen = {created["status"]: created}
        events_running: Json = {}
        for seconds in (TIMING.validate, TIMING.queue, 11 * TIMING.step, JOB_TOTAL):
            api.emu.advance(seconds)
            job = await api.job(job_id)
            seen[job["status"]] = job
            if job["status"] == "running":
                events_running = await api.ok("GET", f"/fine_tuning/jobs/{job_id}/events")
        seen_final = seen["succeeded"]
        jobs = await api.ok("GET", "/fine_tuning/jobs")
        page = await api.ok("GET", "/fine_tuning/jobs", limit="1")
        events = await api.ok("GET", f"/fine_tuning/jobs/{job_id}/events", limit="100")
        checkpoints = await api.ok("GET", f"/fine_tuning/jobs/{job_id}/checkpoints")
        result = await api.ok("GET", f"/files/{seen_final['result_files'][0]}")

    assert ["validating_files", "queued", "running", "succeeded"] == list(seen)
    for status, job in seen.items():
        assert status == job["status"]
        assert_conforms("FineTuningJob", job)
    assert seen_final["fine_tuned_model"]
    assert_conforms("ListPaginatedFineTuningJobsResponse", jobs)
    assert [job_id] == [j["id"] for j in jobs["data"]]
    assert_conforms("ListPaginatedFineTuningJobsResponse", page)
    assert_conforms("ListFineTuningJobEventsResponse", events_running)
    assert_conforms("ListFineTuningJobEventsResponse", events)
    assert {"message", "metrics"} == {e["type"] for e in events["data"]}
    assert_conforms("ListFineTuningJobCheckpointsResponse", checkpoints)
    assert 3 == len(checkpoints["data"])
    assert_conforms("OpenAIFile", result)


@pytest.mark.asyncio
async def test_a_failed_job_with_its_error_matches_the_job_schema() -> None:
    """A job failed on a too-small file carries an ``error`` the spec accepts."""
    async with running() as api:
        created = await api.create_job(supervised_file(3))
        api.emu.advance(TIMING.validate)
        failed = await api.job(created["id"])
        events = await api.ok("GET", f"/fine_tuning/jobs/{created['id']}/events")
        checkpoints = await api.ok("GET", f"/fine_tuning/jobs/{created['id']}/checkpoints")
    assert "failed" == failed["status"]
    assert "training_file" == failed["error"]["param"]
    assert_conforms("FineTuningJob", failed)
    assert_conforms("ListFineTuningJobEventsResponse", events)
    assert "error" in {e["level"] for e in events["data"]}
    assert [] == checkpoints["data"]
    assert_conforms("ListFineTuningJobCheckpointsResponse", checkpoints)


@pytest.mark.asyncio
async def test_a_cancelled_job_matches_the_job_schema() -> None:
    """A job cancelled while running (and the cancel answer) match the spec."""
    async with running() as api:
        created = await api.create_job(supervised_file())
        api.emu.advance(TIMING.validate + TIMING.queue + 3 * TIMING.step)
        answer = await api.ok("POST", f"/fine_tuning/jobs/{created['id']}/cancel")
        later = await api.job(created["id"])
    assert "cancelled" == answer["status"]
    assert_conforms("FineTuningJob", answer)
    assert_conforms("FineTuningJob", later)


@pytest.mark.asyncio
async def test_a_paused_job_matches_the_job_schema_apart_from_the_status() -> None:
    """A paused job has the spec's shape; only ``paused`` is missing from the spec's enum."""
    async with running() as api:
        created = await api.create_job(supervised_file())
        api.emu.advance(TIMING.validate + TIMING.queue + 2 * TIMING.step)
        paused = await api.ok("POST", f"/fine_tuning/jobs/{created['id']}/pause")
        resumed = await api.ok("POST", f"/fine_tuning/jobs/{created['id']}/resume")
    assert "paused" == paused["status"]
    status_errors = schema_errors("FineTuningJob", paused)
    assert 1 == len(status_errors)
    assert status_errors[0].startswith("$.status:")
    assert_conforms("FineTuningJob", {**paused, "status": "running"})
    assert_conforms("FineTuningJob", resumed)


@pytest.mark.asyncio
async def test_a_dpo_job_matches_the_job_schema() -> None:
    """A DPO job, with its method and beta, matches the spec through to success."""
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}}
    async with running() as api:
        created = await api.create_job(dpo_file(), method=method)
        api.emu.advance(JOB_TOTAL)
        done = await api.job(created["id"])
    assert_conforms("FineTuningJob", created)
    assert "succeeded" == done["status"]
    assert 0.2 == done["method"]["dpo"]["hyperparameters"]["beta"]
    assert_conforms("FineTuningJob", done)


@pytest.mark.asyncio
async def test_checkpoint_permissions_and_models_match_the_spec() -> None:
    """Permission create/list/delete and model retrieve/delete answers match the spec."""
    async with running() as api:
        created = await api.create_job(supervised_file())
        api.emu.advance(JOB_TOTAL)
        job = await api.job(created["id"])
        checkpoints = await api.ok("GET", f"/fine_tuning/jobs/{created['id']}/checkpoints")
        checkpoint = checkpoints["data"][0]["fine_tuned_model_checkpoint"]
        path = f"/fine_tuning/checkpoints/{checkpoint}/permissions"
        granted = await api.ok("POST", path, json={"project_ids": ["proj_a", "proj_b"]})
        listed = await api.ok("GET", path)
        filtered = await api.ok("GET", path, project_id="proj_a", order="ascending")
        deleted = await api.ok("DELETE", f"{path}/{granted['data'][0]['id']}")
        emptied = await api.ok("GET", path, project_id="proj_a")
        base = await api.ok("GET", f"/models/{BASE_MODEL}")
        tuned = await api.ok("GET", f"/models/{job['fine_tuned_model']}")
        removed = await api.ok("DELETE", f"/models/{job['fine_tuned_model']}")

    assert_conforms("ListFineTuningCheckpointPermissionResponse", granted)
    assert 2 == len(granted["data"])
    assert_conforms("ListFineTuningCheckpointPermissionResponse", listed)
    assert_conforms("ListFineTuningCheckpointPermissionResponse", filtered)
    assert ["proj_a"] == [p["project_id"] for p in filtered["data"]]
    for permission in granted["data"]:
        assert_conforms("FineTuningCheckpointPermission", permission)
    assert_conforms("DeleteFineTuningCheckpointPermissionResponse", deleted)
    assert deleted["deleted"] is True
    assert_conforms("ListFineTuningCheckpointPermissionResponse", emptied)
    assert [] == emptied["data"]
    assert_conforms("Model", base)
    assert_conforms("Model", tuned)
    assert job["fine_tuned_model"] == tuned["id"]
    assert_conforms("DeleteModelResponse", removed)
    assert removed["deleted"] is True


# --- files ---------------------------------------------------------------------------------------

#: The upload purposes that OpenAIFile's own ``purpose`` enum lists (it lacks ``evals``).
FILE_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data"]


@pytest.mark.asyncio
async def test_files_match_the_file_list_and_delete_schemas() -> None:
    """Uploaded, generated, listed and deleted files match the spec."""
    async with running() as api:
        uploads = [
            await api.upload(f"{purpose}\n".encode(), purpose, f"{purpose}.jsonl")
            for purpose in FILE_PURPOSES
        ]
        retrieved = await api.ok("GET", f"/files/{uploads[0]['id']}")
        listing = await api.ok("GET", "/files")
        page = await api.ok("GET", "/files", limit="2", order="asc")
        filtered = await api.ok("GET", "/files", purpose="batch")
        deleted = await api.ok("DELETE", f"/files/{uploads[0]['id']}")

    for uploaded in uploads:
        assert_conforms("OpenAIFile", uploaded)
    assert_conforms("OpenAIFile", retrieved)
    assert len(FILE_PURPOSES) == len(listing["data"])
    assert_conforms("ListFilesResponse", listing)
    assert_conforms("ListFilesResponse", page)
    assert page["has_more"] is True
    assert_conforms("ListFilesResponse", filtered)
    assert_conforms("DeleteFileResponse", deleted)


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_batch_in_every_status_of_a_successful_run_matches_the_batch_schema() -> None:
    """validating, in_progress, finalizing and completed batches, the list and files match."""
    lines = [chat_line(f"r{i}") for i in range(4)]
    async with running() as api:
        created = await api.create_batch(lines)
        seen = {created["status"]: created}
        for seconds in (
            TIMING.batch_validate,
            2 * TIMING.batch_request,
            2 * TIMING.batch_request,
            TIMING.batch_finalize,
        ):
            api.emu.advance(seconds)
            batch = await api.batch(created["id"])
            seen[batch["status"]] = batch
        listing = await api.ok("GET", "/batches")
        output = await api.ok("GET", f"/files/{seen['completed']['output_file_id']}")
        files = await api.ok("GET", "/files")
    assert ["validating", "in_progress", "finalizing", "completed"] == list(seen)
    for status, batch in seen.items():
        assert status == batch["status"]
        assert_conforms("Batch", batch)
    assert "usage" in seen["completed"]
    assert_conforms("ListBatchesResponse", listing)
    assert_conforms("OpenAIFile", output)
    assert_conforms("ListFilesResponse", files)


@pytest.mark.asyncio
async def test_failed_cancelled_and_expired_batches_match_the_batch_schema() -> None:
    """A failed batch with ``errors``, a cancelling/cancelled one and an expired one match."""
    slow = Timing(batch_request=3600.0)
    async with running(timing=slow) as api:
        bad = await api.create_batch([chat_line("a"), b"{not json", chat_line("a")])
        cancel_me = await api.create_batch([chat_line(f"c{i}") for i in range(3)])
        expire_me = await api.create_batch([chat_line(f"e{i}") for i in range(30)])
        api.emu.advance(TIMING.batch_validate + 3600)
        failed = await api.batch(bad["id"])
        cancelling = await api.ok("POST", f"/batches/{cancel_me['id']}/cancel")
        api.emu.advance(TIMING.batch_cancel)
        cancelled = await api.batch(cancel_me["id"])
        api.emu.advance(24 * 3600)
        expired = await api.batch(expire_me["id"])
        listing = await api.ok("GET", "/batches", limit="2")
    assert "failed" == failed["status"]
    assert [2, 3] == [e["line"] for e in failed["errors"]["data"]]
    assert_conforms("Batch", failed)
    assert "cancelling" == cancelling["status"]
    assert_conforms("Batch", cancelling)
    assert "cancelled" == cancelled["status"]
    assert_conforms("Batch", cancelled)
    assert "expired" == expired["status"]
    assert_conforms("Batch", expired)
    assert_conforms("ListBatchesResponse", listing)
    assert listing["has_more"] is True
