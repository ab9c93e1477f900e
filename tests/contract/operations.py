"""The spec's 22 operations as SDK calls, written once for both clients, and what checks them.

``CALLS`` maps every operation of ``openai-finetune-facts.yaml`` to a call of the public API
(several calls for an operation whose request has several shapes, such as the three fine-tuning
methods). Each call is a function of the client, so ``AsyncClient`` and ``Client`` run the very
same line: the async client returns a coroutine or an ``AsyncPager``, the blocking one the result
or a ``Pager``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import attrs
import orjson

from finetune_async._pagination import AsyncPager, Pager
from finetune_async._transport import AiohttpTransport
from finetune_async.types import (
    Batch,
    CheckpointPermission,
    CheckpointPermissionDeleted,
    FileDeleted,
    FileObject,
    FineTuningIntegration,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    Method,
    Model,
    ModelDeleted,
    Page,
    SupervisedHyperparameters,
    SupervisedMethod,
    WandbIntegration,
)

if TYPE_CHECKING:
    from finetune_async import AsyncClient, Client
    from finetune_async._sansio import AttemptTimeout, DownloadSink, Request, Response

JOB_ID: Final = "ftjob-abc123"
FILE_ID: Final = "file-abc123"
BATCH_ID: Final = "batch_abc123"
CHECKPOINT: Final = "ft:gpt-4o-mini-2024-07-18:org-abc:weather:7q8mpxmy:ckpt-step-10"
PERMISSION_ID: Final = "cp_zGL6e4GcPOPK0rPc"
FINE_TUNED_MODEL: Final = "ft:gpt-4o-mini-2024-07-18:org-abc:weather:7q8mpxmy"
BASE_MODEL: Final = "gpt-4o-mini-2024-07-18"
#: A line of Prism's log where its validator reports a violation of the spec (warnings included).
PRISM_VIOLATION: Final = re.compile(r"\[VALIDATOR\]\s+\S+\s+(warning|error)\b")
TRAINING_LINE: Final = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
)


@attrs.frozen
class Call:
    """One SDK call of one spec operation.

    Attributes:
        operation_id: The spec's ``operationId``.
        method: The operation's HTTP method.
        path: The operation's path template, e.g. ``/fine_tuning/jobs/{fine_tuning_job_id}``.
        invoke: The call, on either client.
        returns: What the SDK gives back: a record, ``Page[record]`` for a list, or bytes.
        variant: Which of several calls of the same operation this is ("" when it is the only).
    """

    operation_id: str
    method: str
    path: str
    invoke: Callable[[Any], Any]
    returns: Any
    variant: str = ""

    @property
    def name(self) -> str:
        """A test id: the operation, and the variant when there is one."""
        return f"{self.operation_id}[{self.variant}]" if self.variant else self.operation_id

    def matches(self, method: str, url: str, base_url: str) -> bool:
        """Whether a request to ``url`` is this operation (``base_url``'s path removed)."""
        path = urlsplit(url).path.removeprefix(urlsplit(base_url).path)
        return method == self.method and _template_pattern(self.path).fullmatch(path) is not None


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = ("[^/]+" if p.startswith("{") else re.escape(p) for p in template.split("/"))
    return re.compile("/".join(parts))


_JOBS = "/fine_tuning/jobs"
_JOB = _JOBS + "/{fine_tuning_job_id}"
_PERMISSIONS = "/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions"
_REINFORCEMENT_GRADER: Final = {
    "type": "string_check",
    "name": "exact answer",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}

CALLS: Final = (
    Call(
        "createFineTuningJob",
        "POST",
        _JOBS,
        lambda c: c.fine_tuning.jobs.create(
            model=BASE_MODEL,
            training_file=FILE_ID,
            validation_file="file-validation",
            method={
                "type": "supervised",
                "supervised": {
                    "hyperparameters": {
                        "n_epochs": 3,
                        "batch_size": "auto",
                        "learning_rate_multiplier": 0.5,
                    }
                },
            },
            suffix="weather",
            seed=42,
            integrations=[
                {"type": "wandb", "wandb": {"project": "ft", "name": "run", "tags": ["a"]}}
            ],
            metadata={"team": "nlp"},
        ),
        FineTuningJob,
        "supervised",
    ),
    Call(
        "createFineTuningJob",
        "POST",
        _JOBS,
        lambda c: c.fine_tuning.jobs.create(
            model=BASE_MODEL,
            training_file=FILE_ID,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": "auto"}}},
        ),
        FineTuningJob,
        "dpo",
    ),
    Call(
        "createFineTuningJob",
        "POST",
        _JOBS,
        lambda c: c.fine_tuning.jobs.create(
            model="o4-mini-2025-04-16",
            training_file=FILE_ID,
            method={
                "type": "reinforcement",
                "reinforcement": {
                    "grader": _REINFORCEMENT_GRADER,
                    "hyperparameters": {"reasoning_effort": "medium", "eval_interval": 2},
                },
            },
        ),
        FineTuningJob,
        "reinforcement",
    ),
    Call(
        "createFineTuningJob",
        "POST",
        _JOBS,
        lambda c: c.fine_tuning.jobs.create(
            model=BASE_MODEL,
            training_file=FILE_ID,
            method=Method(
                type="supervised",
                supervised=SupervisedMethod(SupervisedHyperparameters(n_epochs=2)),
            ),
            integrations=[FineTuningIntegration(wandb=WandbIntegration(project="ft"))],
        ),
        FineTuningJob,
        "records",
    ),
    Call(
        "createFineTuningJob",
        "POST",
        _JOBS,
        lambda c: c.fine_tuning.jobs.create(
            model=BASE_MODEL, training_file=FILE_ID, hyperparameters={"n_epochs": 4}
        ),
        FineTuningJob,
        "deprecated hyperparameters",
    ),
    Call(
        "listPaginatedFineTuningJobs",
        "GET",
        _JOBS,
        lambda c: c.fine_tuning.jobs.list(limit=5, after=JOB_ID, metadata={"team": "nlp"}),
        Page[FineTuningJob],
    ),
    Call(
        "retrieveFineTuningJob",
        "GET",
        _JOB,
        lambda c: c.fine_tuning.jobs.retrieve(JOB_ID),
        FineTuningJob,
    ),
    Call(
        "cancelFineTuningJob",
        "POST",
        _JOB + "/cancel",
        lambda c: c.fine_tuning.jobs.cancel(JOB_ID),
        FineTuningJob,
    ),
    Call(
        "pauseFineTuningJob",
        "POST",
        _JOB + "/pause",
        lambda c: c.fine_tuning.jobs.pause(JOB_ID),
        FineTuningJob,
    ),
    Call(
        "resumeFineTuningJob",
        "POST",
        _JOB + "/resume",
        lambda c: c.fine_tuning.jobs.resume(JOB_ID),
        FineTuningJob,
    ),
    Call(
        "listFineTuningEvents",
        "GET",
        _JOB + "/events",
        lambda c: c.fine_tuning.jobs.list_events(JOB_ID, limit=3, after="ftevent-abc"),
        Page[FineTuningJobEvent],
    ),
    Call(
        "listFineTuningJobCheckpoints",
        "GET",
        _JOB + "/checkpoints",
        lambda c: c.fine_tuning.jobs.checkpoints.list(JOB_ID, limit=3, after="ftckpt-abc"),
        Page[FineTuningJobCheckpoint],
    ),
    Call(
        "createFineTuningCheckpointPermission",
        "POST",
        _PERMISSIONS,
        lambda c: c.fine_tuning.checkpoints.permissions.create(
            CHECKPOINT, project_ids=["proj_abc", "proj_def"]
        ),
        Page[CheckpointPermission],
    ),
    Call(
        "listFineTuningCheckpointPermissions",
        "GET",
        _PERMISSIONS,
        lambda c: c.fine_tuning.checkpoints.permissions.list(
            CHECKPOINT, project_id="proj_abc", after=PERMISSION_ID, limit=2, order="descending"
        ),
        Page[CheckpointPermission],
    ),
    Call(
        "deleteFineTuningCheckpointPermission",
        "DELETE",
        _PERMISSIONS + "/{permission_id}",
        lambda c: c.fine_tuning.checkpoints.permissions.delete(
            PERMISSION_ID, fine_tuned_model_checkpoint=CHECKPOINT
        ),
        CheckpointPermissionDeleted,
    ),
    Call(
        "createBatch",
        "POST",
        "/batches",
        lambda c: c.batches.create(
            input_file_id=FILE_ID, endpoint="/v1/chat/completions", metadata={"team": "nlp"}
        ),
        Batch,
    ),
    Call(
        "createBatch",
        "POST",
        "/batches",
        lambda c: c.batches.create(
            input_file_id=FILE_ID,
            endpoint="/v1/embeddings",
            output_expires_after={"anchor": "created_at", "seconds": 86_400},
        ),
        Batch,
        "output expiry",
    ),
    Call(
        "listBatches",
        "GET",
        "/batches",
        lambda c: c.batches.list(limit=2, after=BATCH_ID),
        Page[Batch],
    ),
    Call(
        "retrieveBatch",
        "GET",
        "/batches/{batch_id}",
        lambda c: c.batches.retrieve(BATCH_ID),
        Batch,
    ),
    Call(
        "cancelBatch",
        "POST",
        "/batches/{batch_id}/cancel",
        lambda c: c.batches.cancel(BATCH_ID),
        Batch,
    ),
    Call(
        "createFile",
        "POST",
        "/files",
        lambda c: c.files.create(file=("train.jsonl", TRAINING_LINE * 3), purpose="fine-tune"),
        FileObject,
        "bytes",
    ),
    Call(
        "createFile",
        "POST",
        "/files",
        lambda c: c.files.create(file=io.BytesIO(TRAINING_LINE), purpose="batch"),
        FileObject,
        "file object",
    ),
    Call(
        "createFile",
        "POST",
        "/files",
        lambda c: c.files.create(
            file=("in.jsonl", TRAINING_LINE),
            purpose="batch",
            expires_after={"anchor": "created_at", "seconds": 86_400},
        ),
        FileObject,
        "expiry",
    ),
    Call(
        "listFiles",
        "GET",
        "/files",
        lambda c: c.files.list(purpose="fine-tune", limit=2, after=FILE_ID, order="asc"),
        Page[FileObject],
    ),
    Call(
        "retrieveFile",
        "GET",
        "/files/{file_id}",
        lambda c: c.files.retrieve(FILE_ID),
        FileObject,
    ),
    Call(
        "deleteFile",
        "DELETE",
        "/files/{file_id}",
        lambda c: c.files.delete(FILE_ID),
        FileDeleted,
    ),
    Call(
        "downloadFile",
        "GET",
        "/files/{file_id}/content",
        lambda c: c.files.content(FILE_ID),
        bytes,
    ),
    Call(
        "retrieveModel",
        "GET",
        "/models/{model}",
        lambda c: c.models.retrieve(FINE_TUNED_MODEL),
        Model,
    ),
    Call(
        "deleteModel",
        "DELETE",
        "/models/{model}",
        lambda c: c.models.delete(FINE_TUNED_MODEL),
        ModelDeleted,
    ),
)


# --- calling -------------------------------------------------------------------------------------


async def call_async(client: AsyncClient, call: Call) -> object:
    """Run ``call`` on the async client; a list gives its first page (Prism always has more)."""
    result = call.invoke(client)
    if isinstance(result, AsyncPager):
        pages = result.pages()
        try:
            return await anext(pages)
        finally:
            await pages.aclose()
    return await result


def call_blocking(client: Client, call: Call) -> object:
    """Run ``call`` on the blocking client; a list gives its first page."""
    result = call.invoke(client)
    if isinstance(result, Pager):
        pages = result.pages()
        try:
            return next(pages)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
    return result


class RecordingTransport:
    """The real aiohttp transport, keeping every request it sends and every answer it reads.

    Each request gets a session of its own, closed before ``send`` returns: nothing is left open
    whichever client (and whichever loop) used it, so a test never has to close it.
    """

    def __init__(self) -> None:
        self.exchanges: list[tuple[Request, Response]] = []

    async def send(self, request: Request, limits: AttemptTimeout) -> Response:
        """Send through aiohttp and record the exchange."""
        inner = AiohttpTransport()
        try:
            response = await inner.send(request, limits)
        finally:
            await inner.aclose()
        self.exchanges.append((request, response))
        return response

    async def stream(
        self, request: Request, limits: AttemptTimeout, sink: DownloadSink
    ) -> Response:
        """Stream through aiohttp and record the exchange (the body went to the sink)."""
        inner = AiohttpTransport()
        try:
            response = await inner.stream(request, limits, sink)
        finally:
            await inner.aclose()
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        """Nothing to close: every session closed with its request."""


# --- checking what came back -------------------------------------------------------------------


def _default_of(field: attrs.Attribute[Any]) -> object:
    default: Any = field.default
    factory = getattr(default, "factory", None)  # an attrs.Factory, as for list fields
    return factory() if factory is not None else default


def mismatches(raw: object, kept: object, where: str = "$") -> list[str]:
    """Every place where ``kept`` (a record, list or value) does not hold what ``raw`` said.

    A record field the answer left out must hold its default; keys the record does not know are
    ignored (they are the leniency under test, counted by ``unknown_keys``).
    """
    if attrs.has(type(kept)):
        return _record_mismatches(raw, kept, where)
    if isinstance(kept, list):
        if not isinstance(raw, list) or len(raw) != len(kept):
            return [f"{where}: {kept!r} made from {raw!r}"]
        return [
            problem
            for index, (raw_item, item) in enumerate(zip(raw, kept, strict=True))
            for problem in mismatches(raw_item, item, f"{where}[{index}]")
        ]
    return [] if _same_value(raw, kept) else [f"{where}: {kept!r} made from {raw!r}"]


def _record_mismatches(raw: object, kept: object, where: str) -> list[str]:
    record_type = type(kept)
    if not isinstance(raw, dict) or not attrs.has(record_type):
        return [f"{where}: a {record_type.__name__} made from {raw!r}"]
    found: list[str] = []
    for field in attrs.fields(record_type):
        value = getattr(kept, field.name)
        if field.name in raw:
            found += mismatches(raw[field.name], value, f"{where}.{field.name}")
        elif value != _default_of(field):
            found.append(f"{where}.{field.name}: not in the answer, yet holds {value!r}")
    return found


def _same_value(raw: object, kept: object) -> bool:
    """Whether a leaf was kept as sent: the same JSON type (an int stays an int) and value."""
    if isinstance(kept, StrEnum):
        return raw == kept.value
    if type(raw) is type(kept):
        return raw == kept
    # Only a float field may hold a JSON integer, as the float of the same value (`loss: 0`).
    return type(raw) is int and type(kept) is float and raw == kept


def unknown_keys(raw: object, kept: object, where: str = "$") -> list[str]:
    """The paths of keys in ``raw`` that no field of the matching record holds."""
    record_type = type(kept)
    if attrs.has(record_type) and isinstance(raw, dict):
        names = {field.name for field in attrs.fields(record_type)}
        found = [f"{where}.{key}" for key in raw if key not in names]
        for name in names & raw.keys():
            found += unknown_keys(raw[name], getattr(kept, name), f"{where}.{name}")
        return found
    if isinstance(kept, list) and isinstance(raw, list):
        return [
            path
            for index, (raw_item, item) in enumerate(zip(raw, kept, strict=False))
            for path in unknown_keys(raw_item, item, f"{where}[{index}]")
        ]
    return []


def nulls(raw: object) -> int:
    """How many JSON nulls ``raw`` holds, at any depth."""
    if raw is None:
        return 1
    if isinstance(raw, dict):
        return sum(nulls(value) for value in raw.values())
    if isinstance(raw, list):
        return sum(nulls(value) for value in raw)
    return 0


def is_instance_of(value: object, returns: Any) -> bool:
    """Whether ``value`` is what ``returns`` names (``Page[X]``: a page of X records)."""
    item_types = getattr(returns, "__args__", None)
    if item_types is None:
        return isinstance(value, returns)
    (item_type,) = item_types
    return isinstance(value, Page) and all(isinstance(item, item_type) for item in value.data)


def violations(prism_log: str) -> list[str]:
    """The lines of a Prism log where its validator reports a violation."""
    return [line for line in prism_log.splitlines() if PRISM_VIOLATION.search(line)]


def assert_contract(
    call: Call,
    result: object,
    exchanges: list[tuple[Request, Response]],
    base_url: str,
    prism_log: str,
) -> None:
    """``call`` sent one request that Prism found valid, and kept its answer whole and typed."""
    assert [] == violations(prism_log)
    assert 1 == len(exchanges)
    request, response = exchanges[0]
    assert call.matches(request.method, request.url, base_url), f"{request.method} {request.url}"
    assert 200 == response.status
    assert is_instance_of(result, call.returns), repr(result)
    if call.returns is bytes:
        assert response.body == result
    else:
        assert [] == mismatches(orjson.loads(response.body), result)
