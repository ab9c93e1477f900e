"""Routes of the fine-tuning API: jobs, their events and checkpoints, checkpoint permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from aiohttp import web

from ..._validation import fine_tuning_job_body
from ...errors import InvalidParameterError
from .._jobs import IllegalTransitionError, JobSim
from ._common import (
    EmulatedAPIError,
    Handler,
    json_body,
    json_response,
    list_page,
    live_page,
    not_found,
    state_of,
    sync_all,
    validate_due,
)

if TYPE_CHECKING:
    from .._files import StoredFile
    from .._state import EmulatorState

__all__ = ["routes"]

_MAX_SEED: Final = 2_147_483_647


async def _job(state: EmulatorState, job_id: str) -> JobSim:
    job = state.jobs.get(job_id)
    if job is None:
        raise not_found("job", job_id, "fine_tuning_job_id")
    now = state.now()
    await validate_due(state, [job], now)
    job.sync(now)
    return job


def _training_file(state: EmulatorState, file_id: object, param: str) -> StoredFile:
    stored = state.files.files.get(file_id) if isinstance(file_id, str) else None
    if stored is None:
        raise EmulatedAPIError(400, f"invalid {param}: {file_id}", param=param, code="invalid_file")
    if stored.purpose != "fine-tune":
        raise EmulatedAPIError(
            400,
            f"File {file_id} has purpose '{stored.purpose}'; {param} needs purpose 'fine-tune'.",
            param=param,
        )
    return stored


async def create_job(request: web.Request) -> web.Response:
    """POST /fine_tuning/jobs: checked as the real API checks it, then started."""
    state = state_of(request)
    raw = await json_body(request)
    try:
        body = fine_tuning_job_body(
            model=raw.get("model"),
            training_file=raw.get("training_file"),
            validation_file=raw.get("validation_file"),
            method=raw.get("method"),
            hyperparameters=raw.get("hyperparameters"),
            suffix=raw.get("suffix"),
            seed=raw.get("seed"),
            integrations=raw.get("integrations"),
            metadata=raw.get("metadata"),
        )
    except InvalidParameterError as exc:
        raise EmulatedAPIError(400, str(exc), param=exc.param) from None
    model = body["model"]
    if model not in state.base_models and model not in state.models:
        raise EmulatedAPIError(
            400,
            f"Model {model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    training = _training_file(state, body["training_file"], "training_file")
    if body.get("validation_file") is not None:
        _training_file(state, body["validation_file"], "validation_file")
    seed = body.get("seed")
    job = JobSim(
        job_id=state.ids.new("ftjob"),
        body=body,
        created_at=state.now(),
        organization=state.organization,
        seed=seed if isinstance(seed, int) else state.rng.randint(0, _MAX_SEED),
        training=training,
        ids=state.ids,
        files=state.files,
        timing=state.timing,
        on_model=state.add_model,
        on_terminal=state.terminal,
    )
    state.jobs[job.id] = job
    return json_response(job.to_json())


def _metadata_filter(request: web.Request) -> dict[str, str] | None:
    """The pairs a job's metadata must have, ``{}`` for "no metadata", or None for no filter.

    The spec's ``metadata`` parameter is a nullable deepObject: ``metadata[k]=v`` pairs, or
    ``metadata=null`` for the jobs that have no metadata.
    """
    pairs = {
        key[len("metadata[") : -1]: value
        for key, value in request.query.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    plain = request.query.getall("metadata", [])
    if not plain:
        return pairs or None
    if plain != ["null"] or pairs:
        got = ", ".join(f"metadata={value}" for value in plain) + (" and pairs" if pairs else "")
        raise EmulatedAPIError(
            400,
            "Invalid 'metadata': send metadata[key]=value pairs, or metadata=null alone for the "
            f"jobs without metadata; got {got}",
            param="metadata",
        )
    return {}


async def list_jobs(request: web.Request) -> web.Response:
    """GET /fine_tuning/jobs: newest first, filtered by ``metadata[k]=v`` or ``metadata=null``."""
    state = state_of(request)
    wanted = _metadata_filter(request)
    now = state.now()
    jobs = []
    for job in reversed(state.jobs.values()):
        metadata = job.metadata or {}
        if wanted == {} and metadata:
            continue
        if wanted and any(metadata.get(k) != v for k, v in wanted.items()):
            continue
        jobs.append(job)
    return json_response(await live_page(request, jobs, now))


async def retrieve_job(request: web.Request) -> web.Response:
    """GET /fine_tuning/jobs/{fine_tuning_job_id}."""
    job = await _job(state_of(request), request.match_info["fine_tuning_job_id"])
    return json_response(job.to_json())


async def job_events(request: web.Request) -> web.Response:
    """GET …/events: newest first."""
    job = await _job(state_of(request), request.match_info["fine_tuning_job_id"])
    return json_response(list_page(request, job.events[::-1], default=20))


async def job_checkpoints(request: web.Request) -> web.Response:
    """GET …/checkpoints: newest first."""
    job = await _job(state_of(request), request.match_info["fine_tuning_job_id"])
    return json_response(list_page(request, job.checkpoints[::-1], default=10, null_ids=True))


def _transition(action: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        state = state_of(request)
        # No body, or the `{}` the Portkey gateway sends upstream (docs/compat.md): both are fine.
        await json_body(request, optional=True)
        job = await _job(state, request.match_info["fine_tuning_job_id"])
        try:
            getattr(job, action)(state.now())
        except IllegalTransitionError as exc:
            raise EmulatedAPIError(400, str(exc), code="invalid_state") from None
        return json_response(job.to_json())

    handler.__doc__ = f"POST …/{action}."
    return handler


# --- checkpoint permissions ----------------------------------------------------------------------


async def create_permissions(request: web.Request) -> web.Response:
    """POST …/permissions: one permission per project id."""
    state = state_of(request)
    checkpoint = request.match_info["checkpoint"]
    body = await json_body(request)
    project_ids = body.get("project_ids")
    if (
        not isinstance(project_ids, list)
        or not project_ids
        or not all(isinstance(p, str) and p for p in project_ids)
    ):
        raise EmulatedAPIError(
            400, "'project_ids' must be a non-empty array of project ids", param="project_ids"
        )
    await sync_all(state)
    if not state.checkpoint_exists(checkpoint):
        raise not_found("checkpoint", checkpoint, "fine_tuned_model_checkpoint")
    created = [
        {
            "object": "checkpoint.permission",
            "id": state.ids.new("cp", "_"),
            "created_at": int(state.now()),
            "project_id": pid,
        }
        for pid in project_ids
    ]
    state.permissions.setdefault(checkpoint, []).extend(created)
    return json_response(
        {
            "object": "list",
            "data": created,
            "has_more": False,
            "first_id": created[0]["id"],
            "last_id": created[-1]["id"],
        }
    )


async def list_permissions(request: web.Request) -> web.Response:
    """GET …/permissions: descending by default, filtered by project."""
    state = state_of(request)
    checkpoint = request.match_info["checkpoint"]
    order = request.query.get("order", "descending")
    if order not in {"ascending", "descending"}:
        raise EmulatedAPIError(
            400,
            f"Invalid 'order': expected 'ascending' or 'descending', got {order!r}",
            param="order",
        )
    project = request.query.get("project_id")
    await sync_all(state)
    if checkpoint not in state.permissions and not state.checkpoint_exists(checkpoint):
        raise not_found("checkpoint", checkpoint, "fine_tuned_model_checkpoint")
    items = [
        p
        for p in state.permissions.get(checkpoint, [])
        if project is None or p["project_id"] == project
    ]
    if order == "descending":
        items.reverse()
    return json_response(list_page(request, items, default=10, null_ids=True))


async def delete_permission(request: web.Request) -> web.Response:
    """DELETE …/permissions/{permission_id}."""
    state = state_of(request)
    checkpoint = request.match_info["checkpoint"]
    permission_id = request.match_info["permission_id"]
    items = state.permissions.get(checkpoint, [])
    for index, item in enumerate(items):
        if item["id"] == permission_id:
            del items[index]
            return json_response(
                {"object": "checkpoint.permission", "id": permission_id, "deleted": True}
            )
    raise not_found("permission", permission_id, "permission_id")


def routes() -> list[web.RouteDef]:
    """Fine-tuning jobs, their events and checkpoints, and checkpoint permissions under ``/v1``."""
    jobs = "/v1/fine_tuning/jobs"
    job = jobs + "/{fine_tuning_job_id}"
    permissions = "/v1/fine_tuning/checkpoints/{checkpoint}/permissions"
    return [
        web.post(jobs, create_job),
        web.get(jobs, list_jobs),
        web.get(job, retrieve_job),
        web.get(job + "/events", job_events),
        web.get(job + "/checkpoints", job_checkpoints),
        web.post(job + "/cancel", _transition("cancel")),
        web.post(job + "/pause", _transition("pause")),
        web.post(job + "/resume", _transition("resume")),
        web.post(permissions, create_permissions),
        web.get(permissions, list_permissions),
        web.delete(permissions + "/{permission_id}", delete_permission),
    ]
