"""The emulator's aiohttp.web application: routes, OpenAI error shapes, faults and counting."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from .._validation import check_expires_after, check_metadata, fine_tuning_job_body
from ..errors import InvalidParameterError
from ._batches import BATCH_ENDPOINTS, BatchSim
from ._faults import RequestRecord, redact_headers
from ._files import StoredFile
from ._jobs import IllegalTransitionError, JobSim
from ._state import EmulatorState

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["STATE", "build_app"]

logger = logging.getLogger("finetune_async.emulator")

STATE: Final = web.AppKey("finetune_async.emulator.state", EmulatorState)

#: Purposes an upload may have (the spec's CreateFileRequest).
UPLOAD_PURPOSES: Final = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_CHUNK: Final = 256 * 1024
_MAX_SEED: Final = 2_147_483_647

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class EmulatedAPIError(Exception):
    """Raised by a handler to answer with OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Describe the error answer."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def response(self) -> web.Response:
        """Return the ``{"error": {...}}`` answer."""
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }
        return _json(body, status=self.status, headers=self.headers)


def _json(
    data: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _not_found(kind: str, value: str, param: str) -> EmulatedAPIError:
    return EmulatedAPIError(
        404, f"No such {kind}: '{value}'", param=param, code=f"{kind}_not_found"
    )


# --- query helpers -----------------------------------------------------------------------------


def _limit(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EmulatedAPIError(
            400, f"Invalid 'limit': expected an integer, got {raw!r}", param="limit"
        ) from None
    if not 1 <= value <= maximum:
        raise EmulatedAPIError(
            400, f"Invalid 'limit': must be between 1 and {maximum}, got {value}", param="limit"
        )
    return value


def _page(
    request: web.Request,
    items: Sequence[dict[str, Any]],
    *,
    default: int,
    maximum: int = 100,
    null_ids: bool = False,
) -> dict[str, Any]:
    """Return one page of ``items`` (already in the list's order) after the ``after`` cursor.

    An empty page has ``first_id`` and ``last_id`` set to null when ``null_ids`` is set (the
    lists whose spec schema requires them or allows null), and leaves them out otherwise.
    """
    limit = _limit(request, default, maximum)
    start = 0
    after = request.query.get("after")
    if after:
        for index, item in enumerate(items):
            if item["id"] == after:
                start = index + 1
                break
        else:
            raise EmulatedAPIError(
                400, f"Invalid 'after': no object with id '{after}' in this list", param="after"
            )
    data = list(items[start : start + limit])
    page: dict[str, Any] = {"object": "list", "data": data, "has_more": start + limit < len(items)}
    if data:
        page["first_id"] = data[0]["id"]
        page["last_id"] = data[-1]["id"]
    elif null_ids:
        page["first_id"] = page["last_id"] = None
    return page


async def _page_of_live(
    request: web.Request, objects: Sequence[JobSim | BatchSim], now: float
) -> dict[str, Any]:
    """Page jobs or batches by id, bringing only the page's objects up to the clock."""
    page = _page(request, [{"id": obj.id} for obj in objects], default=20)
    by_id = {obj.id: obj for obj in objects}
    live = [by_id[item["id"]] for item in page["data"]]
    await _validate_due(_state(request), [obj for obj in live if isinstance(obj, JobSim)], now)
    for obj in live:
        obj.sync(now)
    page["data"] = [obj.to_json() for obj in live]
    return page


async def _validate_due(state: EmulatorState, jobs: Iterable[JobSim], now: float) -> None:
    """Validate, on worker threads, the training files that ``sync(now)`` would validate.

    Validation reads the whole file (a 150 MB file takes about a second): on the event loop it
    would hold up every other request meanwhile. One validation runs per job however many
    requests look at it at once; a request that gives up does not cancel it.
    """
    waits = [_validation(state, job) for job in jobs if job.validation_due(now)]
    if waits:
        await asyncio.gather(*waits)


def _validation(state: EmulatorState, job: JobSim) -> asyncio.Future[None]:
    running = state.validations.get(job.id)
    if running is None:
        running = asyncio.ensure_future(asyncio.to_thread(job.run_validation))
        state.validations[job.id] = running
        running.add_done_callback(lambda _: state.validations.pop(job.id, None))
    return asyncio.shield(running)


async def _sync_all(state: EmulatorState) -> None:
    """``state.sync_all()``, with the training files it would validate validated off the loop."""
    await _validate_due(state, list(state.jobs.values()), state.now())
    state.sync_all()


def _too_large(what: str, limit: int) -> EmulatedAPIError:
    return EmulatedAPIError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"{what} is too large: the limit is {limit} bytes.",
        code="request_too_large",
    )


async def _json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    limit = _state(request).limits.json_bytes
    # Refuse a declared oversize body before reading any of it; aiohttp's client_max_size (the
    # same limit) stops a chunked one while it is read.
    if request.content_length is not None and request.content_length > limit:
        raise _too_large("The JSON body", limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large("The JSON body", limit) from None
    if not raw.strip():
        if optional:
            return {}
        raise EmulatedAPIError(400, "The request needs a JSON body.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise EmulatedAPIError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise EmulatedAPIError(400, "The JSON body must be an object.")
    return body


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE]


# --- files -------------------------------------------------------------------------------------


# Multipart has no nesting: an expiration policy comes as bracketed field names, or as one
# JSON part, OpenAPI's default encoding of an object in multipart/form-data (OpenAPI 3.1,
# "Encoding Object"). Both are accepted.
_EXPIRY_PARTS: Final = {"expires_after[anchor]": "anchor", "expires_after[seconds]": "seconds"}
_EXPIRY_JSON: Final = "expires_after"
#: The largest text field of an upload (purpose, expires_after): a few bytes in practice.
_FIELD_BYTES: Final = 64 * 1024
#: What the parts' headers and the text fields may add to the file in a multipart body.
_FORM_OVERHEAD: Final = 1024 * 1024
# What aiohttp's multipart reader raises on a body that is not well-formed multipart (each was
# seen by sending one): ValueError ("Could not find starting boundary", "boundary missed",
# "boundary ... is too long", "Reading after EOF") and BadHttpMessage (LineTooLong for a part
# header over 8190 bytes, InvalidHeader).
_MALFORMED: Final = (ValueError, BadHttpMessage)


@attrs.define
class _Upload:
    """The fields of one ``POST /files`` body; the file's bytes are already on disk."""

    purpose: str | None = None
    expiry: dict[str, object] = attrs.field(factory=dict)
    expiry_json: str | None = None
    filename: str | None = None
    size: int | None = None


def _expiry_seconds(upload: _Upload) -> int | None:
    """The seconds of an upload's expiration policy, checked as the SDK checks it (None: none)."""
    fields = upload.expiry
    if upload.expiry_json is not None:
        if fields:
            raise EmulatedAPIError(
                400,
                "Send 'expires_after' once: as one JSON part or as expires_after[...] fields.",
                param="expires_after",
            )
        try:
            fields = orjson.loads(upload.expiry_json)
        except orjson.JSONDecodeError:
            raise EmulatedAPIError(
                400, "Invalid 'expires_after': the part is not JSON.", param="expires_after"
            ) from None
    elif not fields:
        return None
    else:
        seconds = fields.get("seconds")
        if isinstance(seconds, str) and seconds.isdigit():
            fields = {**fields, "seconds": int(seconds)}
    try:
        policy = check_expires_after(fields, "expires_after")
    except InvalidParameterError as exc:
        raise EmulatedAPIError(400, str(exc), param=exc.param) from None
    if policy is None:
        # `null` in the JSON part: no policy, as when the field is left out.
        return None
    return int(policy["seconds"])


async def _field_text(part: BodyPartReader) -> str:
    """The text of a small form field, refused beyond ``_FIELD_BYTES``."""
    raw = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        raw += chunk
        if len(raw) > _FIELD_BYTES:
            raise _too_large(f"The '{part.name}' field", _FIELD_BYTES)
    charset = part.get_charset(default="utf-8")
    try:
        return raw.decode(charset).strip()
    except (LookupError, UnicodeDecodeError):
        raise EmulatedAPIError(
            400, f"The '{part.name}' field is not text in charset {charset!r}.", param=part.name
        ) from None


async def _save_file(part: BodyPartReader, path: Path, limit: int) -> int:
    """Stream the file part to ``path``; return its size, refused beyond ``limit`` bytes."""
    size = 0
    with path.open("wb") as handle:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large("The file", limit)
            handle.write(chunk)
    return size


async def _read_upload(request: web.Request, path: Path, limit: int) -> _Upload:
    """Read a multipart upload: the fields in memory, the file part streamed to ``path``."""
    upload = _Upload()
    try:
        reader = await request.multipart()
        async for part in reader:
            if request.content.total_bytes > limit + _FORM_OVERHEAD:
                raise _too_large("The upload", limit)
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "purpose":
                upload.purpose = await _field_text(part)
            elif part.name in _EXPIRY_PARTS:
                upload.expiry[_EXPIRY_PARTS[part.name]] = await _field_text(part)
            elif part.name == _EXPIRY_JSON:
                upload.expiry_json = await _field_text(part)
            elif part.name == "file":
                upload.filename = part.filename or "upload"
                upload.size = await _save_file(part, path, limit)
    except _MALFORMED as exc:
        # Only the reader raises these here: the helpers raise EmulatedAPIError or OSError.
        detail = exc.message if isinstance(exc, BadHttpMessage) else str(exc)
        raise EmulatedAPIError(
            400, f"The body is not a valid multipart/form-data upload: {detail.strip()[:200]}"
        ) from None
    return upload


async def create_file(request: web.Request) -> web.Response:
    """POST /files: a multipart upload, streamed to disk."""
    state = _state(request)
    limit = state.limits.file_bytes
    if not request.content_type.startswith("multipart/"):
        raise EmulatedAPIError(
            400, "Uploads must be multipart/form-data with 'file' and 'purpose'."
        )
    if request.content_length is not None and request.content_length > limit + _FORM_OVERHEAD:
        raise _too_large("The upload", limit)
    file_id = state.ids.new("file")
    path = state.files.path_for(file_id)
    try:
        upload = await _read_upload(request, path, limit)
        stored = _checked_upload(state, upload, file_id, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    state.files.add(stored)
    return _json(stored.to_json())


def _checked_upload(state: EmulatorState, upload: _Upload, file_id: str, path: Path) -> StoredFile:
    """The file an upload describes, once its fields are checked as the API checks them."""
    if upload.size is None:
        raise EmulatedAPIError(400, "Missing the 'file' part of the upload.", param="file")
    purpose = upload.purpose
    if purpose not in UPLOAD_PURPOSES:
        allowed = ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES)
        raise EmulatedAPIError(
            400, f"Invalid 'purpose': {purpose!r}. Expected one of {allowed}.", param="purpose"
        )
    seconds = _expiry_seconds(upload)
    stored = StoredFile(
        file_id=file_id,
        filename=upload.filename or "upload",
        purpose=purpose,
        path=path,
        size=upload.size,
        created_at=int(state.now()),
    )
    if seconds is not None:
        stored.expires_at = stored.created_at + seconds
    return stored


def _file(state: EmulatorState, file_id: str) -> StoredFile:
    stored = state.files.files.get(file_id)
    if stored is None:
        raise _not_found("file", file_id, "file_id")
    return stored


async def list_files(request: web.Request) -> web.Response:
    """GET /files: filtered by purpose, ordered by creation (desc by default)."""
    state = _state(request)
    await _sync_all(state)
    purpose = request.query.get("purpose")
    order = request.query.get("order", "desc")
    if order not in {"asc", "desc"}:
        raise EmulatedAPIError(
            400, f"Invalid 'order': expected 'asc' or 'desc', got {order!r}", param="order"
        )
    files = [
        f.to_json() for f in state.files.files.values() if purpose is None or f.purpose == purpose
    ]
    if order == "desc":
        files.reverse()
    # ListFilesResponse requires first_id and last_id, even on an empty page.
    return _json(_page(request, files, default=10000, maximum=10000, null_ids=True))


async def retrieve_file(request: web.Request) -> web.Response:
    """GET /files/{file_id}."""
    return _json(_file(_state(request), request.match_info["file_id"]).to_json())


async def delete_file(request: web.Request) -> web.Response:
    """DELETE /files/{file_id}."""
    state = _state(request)
    file_id = request.match_info["file_id"]
    _file(state, file_id)
    state.files.delete(file_id)
    return _json({"id": file_id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.StreamResponse:
    """GET /files/{file_id}/content: the bytes, streamed from disk (Range requests honoured)."""
    stored = _file(_state(request), request.match_info["file_id"])
    return web.FileResponse(stored.path, headers={"Content-Type": "application/octet-stream"})


# --- fine-tuning jobs ----------------------------------------------------------------------------


async def _job(state: EmulatorState, job_id: str) -> JobSim:
    job = state.jobs.get(job_id)
    if job is None:
        raise _not_found("job", job_id, "fine_tuning_job_id")
    now = state.now()
    await _validate_due(state, [job], now)
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
    state = _state(request)
    raw = await _json_body(request)
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
    )
    state.jobs[job.id] = job
    return _json(job.to_json())


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
    state = _state(request)
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
    return _json(await _page_of_live(request, jobs, now))


async def retrieve_job(request: web.Request) -> web.Response:
    """GET /fine_tuning/jobs/{fine_tuning_job_id}."""
    job = await _job(_state(request), request.match_info["fine_tuning_job_id"])
    return _json(job.to_json())


async def job_events(request: web.Request) -> web.Response:
    """GET …/events: newest first."""
    job = await _job(_state(request), request.match_info["fine_tuning_job_id"])
    return _json(_page(request, job.events[::-1], default=20))


async def job_checkpoints(request: web.Request) -> web.Response:
    """GET …/checkpoints: newest first."""
    job = await _job(_state(request), request.match_info["fine_tuning_job_id"])
    return _json(_page(request, job.checkpoints[::-1], default=10, null_ids=True))


def _transition(action: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        state = _state(request)
        # No body, or the `{}` the Portkey gateway sends upstream (COMPAT.md): both are fine.
        await _json_body(request, optional=True)
        job = await _job(state, request.match_info["fine_tuning_job_id"])
        try:
            getattr(job, action)(state.now())
        except IllegalTransitionError as exc:
            raise EmulatedAPIError(400, str(exc), code="invalid_state") from None
        return _json(job.to_json())

    handler.__doc__ = f"POST …/{action}."
    return handler


# --- checkpoint permissions ----------------------------------------------------------------------


async def create_permissions(request: web.Request) -> web.Response:
    """POST …/permissions: one permission per project id."""
    state = _state(request)
    checkpoint = request.match_info["checkpoint"]
    body = await _json_body(request)
    project_ids = body.get("project_ids")
    if (
        not isinstance(project_ids, list)
        or not project_ids
        or not all(isinstance(p, str) and p for p in project_ids)
    ):
        raise EmulatedAPIError(
            400, "'project_ids' must be a non-empty array of project ids", param="project_ids"
        )
    await _sync_all(state)
    if not state.checkpoint_exists(checkpoint):
        raise _not_found("checkpoint", checkpoint, "fine_tuned_model_checkpoint")
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
    return _json(
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
    state = _state(request)
    checkpoint = request.match_info["checkpoint"]
    order = request.query.get("order", "descending")
    if order not in {"ascending", "descending"}:
        raise EmulatedAPIError(
            400,
            f"Invalid 'order': expected 'ascending' or 'descending', got {order!r}",
            param="order",
        )
    project = request.query.get("project_id")
    await _sync_all(state)
    if checkpoint not in state.permissions and not state.checkpoint_exists(checkpoint):
        raise _not_found("checkpoint", checkpoint, "fine_tuned_model_checkpoint")
    items = [
        p
        for p in state.permissions.get(checkpoint, [])
        if project is None or p["project_id"] == project
    ]
    if order == "descending":
        items.reverse()
    return _json(_page(request, items, default=10, null_ids=True))


async def delete_permission(request: web.Request) -> web.Response:
    """DELETE …/permissions/{permission_id}."""
    state = _state(request)
    checkpoint = request.match_info["checkpoint"]
    permission_id = request.match_info["permission_id"]
    items = state.permissions.get(checkpoint, [])
    for index, item in enumerate(items):
        if item["id"] == permission_id:
            del items[index]
            return _json({"object": "checkpoint.permission", "id": permission_id, "deleted": True})
    raise _not_found("permission", permission_id, "permission_id")


# --- batches -------------------------------------------------------------------------------------


def _batch(state: EmulatorState, batch_id: str) -> BatchSim:
    batch = state.batches.get(batch_id)
    if batch is None:
        raise _not_found("batch", batch_id, "batch_id")
    batch.sync(state.now())
    return batch


async def create_batch(request: web.Request) -> web.Response:
    """POST /batches."""
    state = _state(request)
    body = await _json_body(request)
    endpoint = body.get("endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise EmulatedAPIError(
            400,
            f"Invalid 'endpoint': {endpoint!r}. Expected one of {', '.join(BATCH_ENDPOINTS)}.",
            param="endpoint",
        )
    window = body.get("completion_window")
    if window != "24h":
        raise EmulatedAPIError(
            400,
            f"Invalid 'completion_window': {window!r}. Only '24h' is supported.",
            param="completion_window",
        )
    input_id = body.get("input_file_id")
    stored = state.files.files.get(input_id) if isinstance(input_id, str) else None
    if stored is None:
        raise EmulatedAPIError(
            400, f"invalid input_file_id: {input_id}", param="input_file_id", code="invalid_file"
        )
    if stored.purpose != "batch":
        raise EmulatedAPIError(
            400,
            f"File {input_id} has purpose '{stored.purpose}'; a batch needs purpose 'batch'.",
            param="input_file_id",
        )
    try:
        metadata = check_metadata(body.get("metadata"))
        check_expires_after(body.get("output_expires_after"), "output_expires_after")
    except InvalidParameterError as exc:
        raise EmulatedAPIError(400, str(exc), param=exc.param) from None
    batch = BatchSim(
        batch_id=state.ids.new("batch", "_"),
        input_file=stored,
        endpoint=endpoint,
        completion_window=window,
        metadata=metadata,
        created_at=state.now(),
        ids=state.ids,
        files=state.files,
        timing=state.timing,
    )
    state.batches[batch.id] = batch
    return _json(batch.to_json())


async def list_batches(request: web.Request) -> web.Response:
    """GET /batches: newest first."""
    state = _state(request)
    return _json(await _page_of_live(request, list(reversed(state.batches.values())), state.now()))


async def retrieve_batch(request: web.Request) -> web.Response:
    """GET /batches/{batch_id}."""
    return _json(_batch(_state(request), request.match_info["batch_id"]).to_json())


async def cancel_batch(request: web.Request) -> web.Response:
    """POST /batches/{batch_id}/cancel."""
    state = _state(request)
    await _json_body(request, optional=True)
    batch = _batch(state, request.match_info["batch_id"])
    if not batch.cancel(state.now()):
        raise EmulatedAPIError(
            400,
            f"Batch {batch.id} is {batch.status}; only an unfinished batch can be cancelled.",
            code="invalid_state",
        )
    return _json(batch.to_json())


# --- models --------------------------------------------------------------------------------------


async def retrieve_model(request: web.Request) -> web.Response:
    """GET /models/{model}."""
    state = _state(request)
    name = request.match_info["model"]
    await _sync_all(state)
    if name in state.models:
        return _json(state.models[name])
    if name in state.base_models:
        return _json(
            {
                "id": name,
                "object": "model",
                "created": state.base_models[name],
                "owned_by": "system",
            }
        )
    raise EmulatedAPIError(
        404, f"The model '{name}' does not exist", param="model", code="model_not_found"
    )


async def delete_model(request: web.Request) -> web.Response:
    """DELETE /models/{model}: fine-tuned models only."""
    state = _state(request)
    name = request.match_info["model"]
    await _sync_all(state)
    if name in state.base_models:
        raise EmulatedAPIError(
            403,
            f"You cannot delete the base model '{name}'.",
            param="model",
            kind="permission_error",
        )
    if state.models.pop(name, None) is None:
        raise EmulatedAPIError(
            404, f"The model '{name}' does not exist", param="model", code="model_not_found"
        )
    return _json({"id": name, "object": "model", "deleted": True})


async def list_models(request: web.Request) -> web.Response:
    """GET /models: base and fine-tuned models (not in the subset spec, but users expect it)."""
    state = _state(request)
    await _sync_all(state)
    base = [
        {"id": n, "object": "model", "created": c, "owned_by": "system"}
        for n, c in state.base_models.items()
    ]
    return _json({"object": "list", "data": base + list(state.models.values())})


# --- middleware: auth, faults, counting, errors --------------------------------------------------


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else request.path
    return f"{request.method} {template.removeprefix('/v1')}"


@web.middleware
async def emulate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request, inject the configured faults, check auth, and shape every error."""
    state = request.app[STATE]
    stats = state.stats
    route = _route_of(request)
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    started = time.monotonic()
    fault: str | None = None
    # Until an answer is made, the request counts as dropped (cut off by a fault or by stop()).
    outcome: int | str = "dropped"
    try:
        faults, bucket = state.faults_for(route)
        if faults.latency:
            await asyncio.sleep(faults.latency)
        fault = faults.pick(state.rng)
        if fault is None and bucket is not None and not bucket.take():
            fault = "rate_limit"
        if fault == "drop":
            await request.read()
            outcome = "dropped"
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        response = await _answer(request, handler, state, fault, faults.retry_after)
        outcome = response.status
        response.headers["x-request-id"] = state.ids.request_id()
        return response
    finally:
        stats.in_flight -= 1
        if fault is not None:
            stats.faults[fault] += 1
        stats.outcomes[outcome] += 1
        # Credentials stay out of the log (a long watch would keep every bearer key).
        headers, credentials = redact_headers(request.headers)
        stats.requests.append(
            RequestRecord(
                started,
                request.method,
                request.path,
                route,
                outcome,
                fault,
                headers,
                credentials=credentials,
            )
        )


def _fault_response(fault: str | None, retry_after: float) -> web.Response | None:
    """Return the answer of an injected 429 or 5xx, or None to let the request through."""
    if fault in {"429", "rate_limit"}:
        return EmulatedAPIError(
            HTTPStatus.TOO_MANY_REQUESTS,
            "Rate limit reached for requests (emulated).",
            code="rate_limit_exceeded",
            kind="requests",
            headers={
                # Retry-After takes whole seconds (RFC 9110); the ms header keeps the precision.
                "Retry-After": str(math.ceil(retry_after)),
                "retry-after-ms": f"{retry_after * 1000:.0f}",
            },
        ).response()
    if fault == "5xx":
        return EmulatedAPIError(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request (emulated).",
            kind="server_error",
        ).response()
    return None


async def _answer(
    request: web.Request,
    handler: Handler,
    state: EmulatorState,
    fault: str | None,
    retry_after: float,
) -> web.StreamResponse:
    injected = _fault_response(fault, retry_after)
    if injected is not None:
        return injected
    try:
        _check_auth(request, state)
        return await handler(request)
    except EmulatedAPIError as failure:
        return failure.response()
    except web.HTTPClientError as exc:
        return _client_error(request, exc).response()
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        # A bug in the emulator: answer as the real API would, and leave a traceback in the log.
        logger.exception("emulator error on %s %s", request.method, request.path)
        return EmulatedAPIError(
            500, "The emulator failed on this request.", kind="server_error"
        ).response()


def _client_error(request: web.Request, exc: web.HTTPClientError) -> EmulatedAPIError:
    """A client error aiohttp raised (no route, wrong method, 413...), in the API's shape."""
    where = f"{request.method} {request.path}"
    if isinstance(exc, web.HTTPNotFound):
        return EmulatedAPIError(404, f"Invalid URL ({where})")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return EmulatedAPIError(405, f"Method not allowed ({where})")
    return EmulatedAPIError(exc.status, exc.reason)


def _check_auth(request: web.Request, state: EmulatorState) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise EmulatedAPIError(
            401,
            "You didn't provide an API key. "
            "Send it in the Authorization header as 'Bearer YOUR_KEY'.",
            kind="invalid_request_error",
        )
    if state.api_key is not None and key.strip() != state.api_key:
        raise EmulatedAPIError(401, "Incorrect API key provided.", code="invalid_api_key")


def build_app(state: EmulatorState) -> web.Application:
    """Return the application serving ``state`` under ``/v1``."""
    # client_max_size bounds what request.read() buffers; uploads stream past it, under their own
    # limit (create_file).
    app = web.Application(middlewares=[emulate], client_max_size=state.limits.json_bytes)
    app[STATE] = state
    jobs = "/v1/fine_tuning/jobs"
    job = jobs + "/{fine_tuning_job_id}"
    permissions = "/v1/fine_tuning/checkpoints/{checkpoint}/permissions"
    app.router.add_routes(
        [
            web.post("/v1/files", create_file),
            web.get("/v1/files", list_files),
            web.get("/v1/files/{file_id}", retrieve_file),
            web.delete("/v1/files/{file_id}", delete_file),
            web.get("/v1/files/{file_id}/content", file_content),
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
            web.post("/v1/batches", create_batch),
            web.get("/v1/batches", list_batches),
            web.get("/v1/batches/{batch_id}", retrieve_batch),
            web.post("/v1/batches/{batch_id}/cancel", cancel_batch),
            web.get("/v1/models", list_models),
            web.get("/v1/models/{model}", retrieve_model),
            web.delete("/v1/models/{model}", delete_model),
        ]
    )
    return app
