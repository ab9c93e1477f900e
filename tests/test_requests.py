"""Exact request shapes of every fine-tuning call: method, URL, headers, body and typed result."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import pytest
import pytest_asyncio
from yarl import URL

from finetune_async import AsyncClient, AsyncPager, __version__
from finetune_async._transport import AiohttpTransport
from finetune_async.types import (
    CheckpointMetrics,
    CheckpointPermission,
    CheckpointPermissionDeleted,
    DpoHyperparameters,
    DpoMethod,
    FineTuningIntegration,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobEventLevel,
    FineTuningJobEventType,
    FineTuningJobStatus,
    Hyperparameters,
    Method,
    MethodType,
    Page,
    ReasoningEffort,
    ReinforcementHyperparameters,
    ReinforcementMethod,
    SupervisedHyperparameters,
    SupervisedMethod,
    WandbIntegration,
)
from tests.conftest import API_KEY, BASE_URL, NO_BACKOFF, MockAPI

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from finetune_async._sansio import AttemptTimeout, DownloadSink, Request, Response

T = TypeVar("T")

JOB_ID = "ftjob-abc123"
CHECKPOINT = "ft:gpt-4o-mini-2024-07-18:org:weather:B7R9VjQd"
JOBS_URL = f"{BASE_URL}/fine_tuning/jobs"
JOB_URL = f"{JOBS_URL}/{JOB_ID}"
PERMISSIONS_URL = f"{BASE_URL}/fine_tuning/checkpoints/{CHECKPOINT}/permissions"


# --- recording the exact URL ---------------------------------------------------------------------


class RecordingTransport:
    """The aiohttp transport, keeping every request it sends (aioresponses normalises URLs)."""

    def __init__(self) -> None:
        self._inner = AiohttpTransport()
        self.sent: list[Request] = []

    async def send(self, request: Request, limits: AttemptTimeout) -> Response:
        """Record ``request``, then send it through aiohttp (intercepted by aioresponses)."""
        self.sent.append(request)
        return await self._inner.send(request, limits)

    async def stream(
        self, request: Request, limits: AttemptTimeout, sink: DownloadSink
    ) -> Response:
        """Record ``request``, then stream it through aiohttp."""
        self.sent.append(request)
        return await self._inner.stream(request, limits, sink)

    async def aclose(self) -> None:
        """Close the aiohttp session."""
        await self._inner.aclose()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's OPENAI_* / PORTKEY_* / AZURE_* variables out of every test."""
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "PORTKEY_", "AZURE_")):
            monkeypatch.delenv(name)


@pytest_asyncio.fixture
async def wire() -> AsyncIterator[RecordingTransport]:
    """A recording transport, closed after the test."""
    transport = RecordingTransport()
    yield transport
    await transport.aclose()


def make_client(wire: RecordingTransport, **options: Any) -> AsyncClient:
    """Return a client on BASE_URL with key API_KEY that sends through ``wire``."""
    return AsyncClient(
        api_key=API_KEY, base_url=BASE_URL, backoff=NO_BACKOFF, transport=wire, **options
    )


@pytest_asyncio.fixture
async def api(wire: RecordingTransport) -> AsyncIterator[AsyncClient]:
    """A client on BASE_URL with key API_KEY whose requests ``wire`` records."""
    async with make_client(wire) as client:
        yield client


def at(url: str) -> URL:
    """Return ``url`` for aioresponses as already encoded (else yarl would decode ``%3D``...)."""
    return URL(url, encoded=True)


def url_parts(url: str) -> tuple[str, list[str]]:
    """Split a URL into what precedes the query and its raw (still encoded) pairs, sorted."""
    head, _, query = url.partition("?")
    return head, sorted(query.split("&")) if query else []


def with_query(url: str, pairs: Mapping[str, str]) -> str:
    """Append ``pairs`` (already URL-safe) to ``url``."""
    if not pairs:
        return url
    extra = "&".join(f"{key}={value}" for key, value in pairs.items())
    return url + ("&" if "?" in url else "?") + extra


def only_call(mock_api: MockAPI) -> tuple[str, str, dict[str, Any]]:
    """Return the one request aioresponses saw."""
    calls = mock_api.calls()
    assert 1 == len(calls), calls
    return calls[0]


def headers_of(kwargs: Mapping[str, Any]) -> dict[str, str]:
    """Return the sent headers with lower-case names (HTTP names are case-insensitive)."""
    return {name.lower(): value for name, value in kwargs["headers"].items()}


def body_of(kwargs: Mapping[str, Any]) -> Any:
    """Return the sent JSON body, decoded."""
    data = kwargs["data"]
    assert isinstance(data, bytes), data
    return json.loads(data)


async def collect(pager: AsyncPager[T]) -> list[T]:
    """Return every item of a list call."""
    return [item async for item in pager]


# --- payloads and the records they give ----------------------------------------------------------

JOB_PAYLOAD: dict[str, Any] = {
    "object": "fine_tuning.job",
    "id": JOB_ID,
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1721764800,
    "fine_tuned_model": None,
    "organization_id": "org-123",
    "result_files": [],
    "status": "queued",
    "validation_file": None,
    "training_file": "file-abc123",
    "seed": 42,
    "metadata": {"team": "ml"},
    "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}},
}
JOB = FineTuningJob(
    id=JOB_ID,
    status=FineTuningJobStatus.QUEUED,
    model="gpt-4o-mini-2024-07-18",
    created_at=1721764800,
    organization_id="org-123",
    result_files=[],
    training_file="file-abc123",
    seed=42,
    metadata={"team": "ml"},
    method=Method(
        type=MethodType.SUPERVISED,
        supervised=SupervisedMethod(hyperparameters=SupervisedHyperparameters(n_epochs="auto")),
    ),
    object="fine_tuning.job",
)
EVENT_PAYLOAD: dict[str, Any] = {
    "object": "fine_tuning.job.event",
    "id": "ftevent-1",
    "created_at": 1721764900,
    "level": "info",
    "message": "Fine-tuning job started",
    "type": "message",
    "data": {},
}
EVENT = FineTuningJobEvent(
    id="ftevent-1",
    created_at=1721764900,
    level=FineTuningJobEventLevel.INFO,
    message="Fine-tuning job started",
    type=FineTuningJobEventType.MESSAGE,
    data={},
    object="fine_tuning.job.event",
)
CHECKPOINT_PAYLOAD: dict[str, Any] = {
    "object": "fine_tuning.job.checkpoint",
    "id": "ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB",
    "created_at": 1721764867,
    "fine_tuned_model_checkpoint": f"{CHECKPOINT}:ckpt-step-100",
    "fine_tuning_job_id": JOB_ID,
    "step_number": 100,
    "metrics": {"step": 100, "train_loss": 0.5, "valid_loss": 0.75},
}
JOB_CHECKPOINT = FineTuningJobCheckpoint(
    id="ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB",
    created_at=1721764867,
    fine_tuned_model_checkpoint=f"{CHECKPOINT}:ckpt-step-100",
    fine_tuning_job_id=JOB_ID,
    step_number=100,
    metrics=CheckpointMetrics(step=100, train_loss=0.5, valid_loss=0.75),
    object="fine_tuning.job.checkpoint",
)
PERMISSION_PAYLOAD: dict[str, Any] = {
    "object": "checkpoint.permission",
    "id": "cp_zc4Q7MP6XxulcVzj4MZdwsAB",
    "created_at": 1721764867,
    "project_id": "proj_abGMw1llN8IrBb6SvvY5A1iH",
}
PERMISSION = CheckpointPermission(
    id="cp_zc4Q7MP6XxulcVzj4MZdwsAB",
    created_at=1721764867,
    project_id="proj_abGMw1llN8IrBb6SvvY5A1iH",
    object="checkpoint.permission",
)
PERMISSIONS_PAGE_PAYLOAD: dict[str, Any] = {
    "object": "list",
    "data": [PERMISSION_PAYLOAD],
    "first_id": PERMISSION.id,
    "last_id": PERMISSION.id,
    "has_more": False,
}
PERMISSIONS_PAGE = Page(
    data=[PERMISSION],
    has_more=False,
    object="list",
    first_id=PERMISSION.id,
    last_id=PERMISSION.id,
)


def page_of(*items: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    """Return a list answer holding ``items``."""
    return {"object": "list", "data": list(items), "has_more": has_more}


def job_payload(status: str) -> dict[str, Any]:
    """Return the job payload with another status."""
    return {**JOB_PAYLOAD, "status": status}


def job_with(status: FineTuningJobStatus) -> FineTuningJob:
    """Return the job record with another status."""
    return attrs.evolve(JOB, status=status)


# --- every call ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One SDK call, what it must send and what it must return."""

    method: str
    url: str
    invoke: Callable[[AsyncClient], Awaitable[object]]
    payload: Any
    expected: object
    status: int = 200


CALLS = [
    pytest.param(
        Call(
            "POST",
            JOBS_URL,
            lambda c: c.fine_tuning.jobs.create(
                model="gpt-4o-mini-2024-07-18", training_file="file-abc123"
            ),
            JOB_PAYLOAD,
            JOB,
        ),
        id="jobs.create",
    ),
    pytest.param(
        Call("GET", JOB_URL, lambda c: c.fine_tuning.jobs.retrieve(JOB_ID), JOB_PAYLOAD, JOB),
        id="jobs.retrieve",
    ),
    pytest.param(
        Call(
            "GET",
            JOBS_URL,
            lambda c: collect(c.fine_tuning.jobs.list()),
            page_of(JOB_PAYLOAD),
            [JOB],
        ),
        id="jobs.list",
    ),
    pytest.param(
        Call(
            "GET",
            f"{JOB_URL}/events",
            lambda c: collect(c.fine_tuning.jobs.list_events(JOB_ID)),
            page_of(EVENT_PAYLOAD),
            [EVENT],
        ),
        id="jobs.list_events",
    ),
    pytest.param(
        Call(
            "GET",
            f"{JOB_URL}/checkpoints",
            lambda c: collect(c.fine_tuning.jobs.checkpoints.list(JOB_ID)),
            page_of(CHECKPOINT_PAYLOAD),
            [JOB_CHECKPOINT],
        ),
        id="jobs.checkpoints.list",
    ),
    pytest.param(
        Call(
            "POST",
            f"{JOB_URL}/cancel",
            lambda c: c.fine_tuning.jobs.cancel(JOB_ID),
            job_payload("cancelled"),
            job_with(FineTuningJobStatus.CANCELLED),
        ),
        id="jobs.cancel",
    ),
    pytest.param(
        Call(
            "POST",
            f"{JOB_URL}/pause",
            lambda c: c.fine_tuning.jobs.pause(JOB_ID),
            job_payload("paused"),
            job_with(FineTuningJobStatus.PAUSED),
        ),
        id="jobs.pause",
    ),
    pytest.param(
        Call(
            "POST",
            f"{JOB_URL}/resume",
            lambda c: c.fine_tuning.jobs.resume(JOB_ID),
            job_payload("running"),
            job_with(FineTuningJobStatus.RUNNING),
        ),
        id="jobs.resume",
    ),
    pytest.param(
        Call(
            "POST",
            PERMISSIONS_URL,
            lambda c: c.fine_tuning.checkpoints.permissions.create(
                CHECKPOINT, project_ids=["proj_abGMw1llN8IrBb6SvvY5A1iH"]
            ),
            PERMISSIONS_PAGE_PAYLOAD,
            PERMISSIONS_PAGE,
        ),
        id="permissions.create",
    ),
    pytest.param(
        Call(
            "GET",
            PERMISSIONS_URL,
            lambda c: collect(c.fine_tuning.checkpoints.permissions.list(CHECKPOINT)),
            PERMISSIONS_PAGE_PAYLOAD,
            [PERMISSION],
        ),
        id="permissions.list",
    ),
    pytest.param(
        Call(
            "DELETE",
            f"{PERMISSIONS_URL}/{PERMISSION.id}",
            lambda c: c.fine_tuning.checkpoints.permissions.delete(
                PERMISSION.id, fine_tuned_model_checkpoint=CHECKPOINT
            ),
            {"object": "checkpoint.permission", "id": PERMISSION.id, "deleted": True},
            CheckpointPermissionDeleted(
                id=PERMISSION.id, deleted=True, object="checkpoint.permission"
            ),
        ),
        id="permissions.delete",
    ),
]


def register(mock_api: MockAPI, call: Call, url: str | None = None) -> None:
    """Answer ``call`` once at ``url`` (default: the call's own URL)."""
    mock_api.add(at(url or call.url), call.method, status=call.status, payload=call.payload)


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_every_call_sends_its_method_and_url(
    mock_api: MockAPI, api: AsyncClient, wire: RecordingTransport, call: Call
) -> None:
    """Each call sends one request with the documented method and exact URL."""
    register(mock_api, call)
    await call.invoke(api)
    method, _, _ = only_call(mock_api)
    assert call.method == method
    assert [call.url] == [request.url for request in wire.sent]


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_every_call_returns_the_typed_result(
    mock_api: MockAPI, api: AsyncClient, call: Call
) -> None:
    """Each call structures the answer into its documented record."""
    register(mock_api, call)
    assert call.expected == await call.invoke(api)


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_every_call_sends_auth_user_agent_and_accept(
    mock_api: MockAPI, api: AsyncClient, call: Call
) -> None:
    """Each call sends the bearer key, the SDK's User-Agent and Accept: application/json."""
    register(mock_api, call)
    await call.invoke(api)
    headers = headers_of(only_call(mock_api)[2])
    assert f"Bearer {API_KEY}" == headers["authorization"]
    assert headers["user-agent"].startswith(f"finetune-async/{__version__}")
    assert "application/json" == headers["accept"]


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_idempotency_key_is_sent_on_posts_only(
    mock_api: MockAPI, api: AsyncClient, call: Call
) -> None:
    """Every POST carries a non-empty Idempotency-Key; GETs and DELETEs carry none."""
    register(mock_api, call)
    await call.invoke(api)
    headers = headers_of(only_call(mock_api)[2])
    if call.method == "POST":
        assert headers.get("idempotency-key")
    else:
        assert "idempotency-key" not in headers


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_content_type_is_json_on_posts_only(
    mock_api: MockAPI, api: AsyncClient, call: Call
) -> None:
    """POSTs say Content-Type: application/json (even with no body); GETs and DELETEs send none."""
    register(mock_api, call)
    await call.invoke(api)
    _, _, kwargs = only_call(mock_api)
    headers = headers_of(kwargs)
    if call.method == "POST":
        assert "application/json" == headers.get("content-type")
    else:
        assert "content-type" not in headers
        assert kwargs["data"] is None


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_no_organization_or_project_header_by_default(
    mock_api: MockAPI, api: AsyncClient, call: Call
) -> None:
    """Without organization= / project= (and no env), neither OpenAI header is sent."""
    register(mock_api, call)
    await call.invoke(api)
    headers = headers_of(only_call(mock_api)[2])
    assert "openai-organization" not in headers
    assert "openai-project" not in headers


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_organization_and_project_are_sent_on_every_call(
    mock_api: MockAPI, wire: RecordingTransport, call: Call
) -> None:
    """organization= and project= become OpenAI-Organization and OpenAI-Project on each call."""
    register(mock_api, call)
    async with make_client(wire, organization="org-42", project="proj_7") as client:
        await call.invoke(client)
    headers = headers_of(only_call(mock_api)[2])
    assert "org-42" == headers["openai-organization"]
    assert "proj_7" == headers["openai-project"]


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_default_headers_are_added_to_every_call(
    mock_api: MockAPI, wire: RecordingTransport, call: Call
) -> None:
    """default_headers are sent with each call, alongside the SDK's own headers."""
    register(mock_api, call)
    extra = {"X-Team": "ml", "X-Trace": "t-1"}
    async with make_client(wire, default_headers=extra) as client:
        await call.invoke(client)
    headers = headers_of(only_call(mock_api)[2])
    assert {"x-team": "ml", "x-trace": "t-1"} == {k: headers[k] for k in ("x-team", "x-trace")}
    assert f"Bearer {API_KEY}" == headers["authorization"]


@pytest.mark.asyncio
@pytest.mark.parametrize("call", CALLS)
async def test_default_query_is_appended_to_every_url(
    mock_api: MockAPI, wire: RecordingTransport, call: Call
) -> None:
    """default_query pairs are added to the query string of each call's URL."""
    extra = {"tenant": "acme", "region": "eu"}
    expected = with_query(call.url, extra)
    register(mock_api, call, expected)
    async with make_client(wire, default_query=extra) as client:
        await call.invoke(client)
    only_call(mock_api)
    assert [url_parts(expected)] == [url_parts(request.url) for request in wire.sent]


# --- jobs.create ---------------------------------------------------------------------------------


async def create_body(
    mock_api: MockAPI, api: AsyncClient, **kwargs: Any
) -> tuple[dict[str, str], Any]:
    """Create a job with ``kwargs`` and return the headers and decoded body that were sent."""
    mock_api.post(JOBS_URL, payload=JOB_PAYLOAD)
    await api.fine_tuning.jobs.create(**kwargs)
    _, _, sent = only_call(mock_api)
    return headers_of(sent), body_of(sent)


REQUIRED: dict[str, Any] = {"model": "gpt-4o-mini-2024-07-18", "training_file": "file-abc123"}


@pytest.mark.asyncio
async def test_create_sends_only_the_required_fields_when_nothing_else_is_given(
    mock_api: MockAPI, api: AsyncClient
) -> None:
    """A create with model and training_file sends exactly those two keys (no nulls)."""
    headers, body = await create_body(mock_api, api, **REQUIRED)
    assert REQUIRED == body
    assert "application/json" == headers["content-type"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"validation_file": "file-val"}, {"validation_file": "file-val"}, id="validation_file"
        ),
        pytest.param({"suffix": "weather"}, {"suffix": "weather"}, id="suffix"),
        pytest.param({"seed": 42}, {"seed": 42}, id="seed"),
        pytest.param({"seed": 0}, {"seed": 0}, id="seed-zero"),
        pytest.param(
            {"metadata": {"team": "ml", "run": "7"}},
            {"metadata": {"team": "ml", "run": "7"}},
            id="metadata",
        ),
        pytest.param({"metadata": {}}, {"metadata": {}}, id="metadata-empty"),
        pytest.param(
            {"hyperparameters": {"n_epochs": 3, "batch_size": "auto"}},
            {"hyperparameters": {"n_epochs": 3, "batch_size": "auto"}},
            id="hyperparameters-dict",
        ),
        pytest.param(
            {"hyperparameters": Hyperparameters(n_epochs=3, learning_rate_multiplier=0.5)},
            {"hyperparameters": {"n_epochs": 3, "learning_rate_multiplier": 0.5}},
            id="hyperparameters-record",
        ),
        pytest.param(
            {"integrations": [{"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}}]},
            {"integrations": [{"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}}]},
            id="integrations-dict",
        ),
    ],
)
async def test_create_sends_given_optional_fields(
    mock_api: MockAPI, api: AsyncClient, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each optional field given is sent as is, next to the required ones and nothing else."""
    _, body = await create_body(mock_api, api, **REQUIRED, **extra)
    assert {**REQUIRED, **expected} == body


@pytest.mark.asyncio
async def test_create_sends_every_field_together(mock_api: MockAPI, api: AsyncClient) -> None:
    """A create with every parameter sends each of them once, with the wire names."""
    _, body = await create_body(
        mock_api,
        api,
        model="gpt-4o-mini-2024-07-18",
        training_file="file-abc123",
        validation_file="file-val",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
        suffix="weather",
        seed=7,
        integrations=[{"type": "wandb", "wandb": {"project": "ft"}}],
        metadata={"team": "ml"},
    )
    assert {
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "file-abc123",
        "validation_file": "file-val",
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
        "suffix": "weather",
        "seed": 7,
        "integrations": [{"type": "wandb", "wandb": {"project": "ft"}}],
        "metadata": {"team": "ml"},
    } == body


GRADER: dict[str, Any] = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}

METHODS = [
    pytest.param(
        {"type": "supervised"},
        Method(type="supervised"),
        id="supervised-bare",
    ),
    pytest.param(
        {
            "type": "supervised",
            "supervised": {
                "hyperparameters": {
                    "n_epochs": 3,
                    "batch_size": "auto",
                    "learning_rate_multiplier": 1.8,
                }
            },
        },
        Method(
            type=MethodType.SUPERVISED,
            supervised=SupervisedMethod(
                hyperparameters=SupervisedHyperparameters(
                    n_epochs=3, batch_size="auto", learning_rate_multiplier=1.8
                )
            ),
        ),
        id="supervised",
    ),
    pytest.param(
        {
            "type": "dpo",
            "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": "auto", "batch_size": 8}},
        },
        Method(
            type="dpo",
            dpo=DpoMethod(
                hyperparameters=DpoHyperparameters(beta=0.1, n_epochs="auto", batch_size=8)
            ),
        ),
        id="dpo",
    ),
    pytest.param(
        {
            "type": "reinforcement",
            "reinforcement": {
                "grader": GRADER,
                "hyperparameters": {
                    "reasoning_effort": "medium",
                    "compute_multiplier": 2,
                    "eval_interval": 5,
                    "eval_samples": 3,
                    "n_epochs": 1,
                },
            },
        },
        Method(
            type=MethodType.REINFORCEMENT,
            reinforcement=ReinforcementMethod(
                grader=GRADER,
                hyperparameters=ReinforcementHyperparameters(
                    reasoning_effort=ReasoningEffort.MEDIUM,
                    compute_multiplier=2,
                    eval_interval=5,
                    eval_samples=3,
                    n_epochs=1,
                ),
            ),
        ),
        id="reinforcement",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("as_dict", "as_record"), METHODS)
async def test_create_sends_a_method_dict_as_given(
    mock_api: MockAPI, api: AsyncClient, as_dict: dict[str, Any], as_record: Method
) -> None:
    """A method given as a dict is sent unchanged under "method"."""
    _, body = await create_body(mock_api, api, **REQUIRED, method=as_dict)
    assert {**REQUIRED, "method": as_dict} == body


@pytest.mark.asyncio
@pytest.mark.parametrize(("as_dict", "as_record"), METHODS)
async def test_create_sends_a_method_record_as_the_same_body_as_its_dict(
    mock_api: MockAPI, api: AsyncClient, as_dict: dict[str, Any], as_record: Method
) -> None:
    """A Method record gives the same JSON body as the equivalent dict (unset fields left out)."""
    _, body = await create_body(mock_api, api, **REQUIRED, method=as_record)
    assert {**REQUIRED, "method": as_dict} == body


@pytest.mark.asyncio
async def test_create_sends_integration_records_as_their_dicts(
    mock_api: MockAPI, api: AsyncClient
) -> None:
    """FineTuningIntegration records are sent as the dicts they stand for, None fields left out."""
    records = [
        FineTuningIntegration(wandb=WandbIntegration(project="ft", tags=["a", "b"])),
        FineTuningIntegration(
            type="wandb", wandb=WandbIntegration(project="p2", name="run", entity="team")
        ),
    ]
    _, body = await create_body(mock_api, api, **REQUIRED, integrations=records)
    assert {
        **REQUIRED,
        "integrations": [
            {"type": "wandb", "wandb": {"project": "ft", "tags": ["a", "b"]}},
            {"type": "wandb", "wandb": {"project": "p2", "name": "run", "entity": "team"}},
        ],
    } == body


@pytest.mark.asyncio
async def test_create_does_not_change_the_callers_dicts(
    mock_api: MockAPI, api: AsyncClient
) -> None:
    """The method, integrations and metadata dicts passed in are left as they were."""
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.5}}}
    integrations = [{"type": "wandb", "wandb": {"project": "p"}}]
    metadata = {"team": "ml"}
    await create_body(
        mock_api,
        api,
        **REQUIRED,
        method=method,
        integrations=integrations,
        metadata=metadata,
    )
    assert {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.5}}} == method
    assert [{"type": "wandb", "wandb": {"project": "p"}}] == integrations
    assert {"team": "ml"} == metadata


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [200, 201])
async def test_create_accepts_200_and_201(mock_api: MockAPI, api: AsyncClient, status: int) -> None:
    """Create answered 200 or 201 returns the job."""
    mock_api.post(JOBS_URL, status=status, payload=JOB_PAYLOAD)
    assert JOB == await api.fine_tuning.jobs.create(**REQUIRED)


@pytest.mark.asyncio
async def test_each_post_gets_its_own_idempotency_key(mock_api: MockAPI, api: AsyncClient) -> None:
    """Two creates carry two different Idempotency-Key values."""
    mock_api.post(JOBS_URL, payload=JOB_PAYLOAD, repeat=True)
    await api.fine_tuning.jobs.create(**REQUIRED)
    await api.fine_tuning.jobs.create(**REQUIRED)
    keys = [headers_of(kwargs)["idempotency-key"] for _, _, kwargs in mock_api.calls()]
    assert 2 == len(set(keys))


# --- cancel / pause / resume ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["cancel", "pause", "resume"])
async def test_job_actions_post_no_body_with_json_content_type(
    mock_api: MockAPI, api: AsyncClient, wire: RecordingTransport, action: str
) -> None:
    """cancel, pause and resume POST no body at all, yet say Content-Type: application/json."""
    mock_api.post(f"{JOB_URL}/{action}", payload=JOB_PAYLOAD)
    await getattr(api.fine_tuning.jobs, action)(JOB_ID)
    method, _, kwargs = only_call(mock_api)
    assert "POST" == method
    assert kwargs["data"] is None
    assert [None] == [request.body for request in wire.sent]
    assert "application/json" == headers_of(kwargs)["content-type"]


# --- lists ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "url"),
    [
        pytest.param({}, JOBS_URL, id="no-query"),
        pytest.param({"limit": 2}, f"{JOBS_URL}?limit=2", id="limit"),
        pytest.param({"after": "ftjob-x"}, f"{JOBS_URL}?after=ftjob-x", id="after"),
        pytest.param(
            {"limit": 5, "after": "ftjob-x"}, f"{JOBS_URL}?after=ftjob-x&limit=5", id="both"
        ),
        pytest.param(
            {"metadata": {"team": "ml"}}, f"{JOBS_URL}?metadata%5Bteam%5D=ml", id="metadata"
        ),
        pytest.param(
            {"metadata": {"team": "ml", "env": "prod"}, "limit": 1},
            f"{JOBS_URL}?limit=1&metadata%5Bteam%5D=ml&metadata%5Benv%5D=prod",
            id="metadata-two-keys",
        ),
        pytest.param(
            {"metadata": {"run name": "a&b=c"}},
            f"{JOBS_URL}?metadata%5Brun+name%5D=a%26b%3Dc",
            id="metadata-escaped",
        ),
    ],
)
async def test_jobs_list_query(
    mock_api: MockAPI,
    api: AsyncClient,
    wire: RecordingTransport,
    kwargs: dict[str, Any],
    url: str,
) -> None:
    """jobs.list sends limit, after and metadata[k]=v in the query string, and nothing unset."""
    mock_api.get(url, payload=page_of(JOB_PAYLOAD))
    assert [JOB] == await collect(api.fine_tuning.jobs.list(**kwargs))
    assert "GET" == only_call(mock_api)[0]
    assert [url_parts(url)] == [url_parts(request.url) for request in wire.sent]


@pytest.mark.asyncio
async def test_jobs_list_metadata_filter_decodes_to_bracketed_keys(
    mock_api: MockAPI, api: AsyncClient, wire: RecordingTransport
) -> None:
    """Decoded, the metadata filter is the spec's deepObject form metadata[k]=v."""
    from urllib.parse import parse_qsl, urlsplit

    url = f"{JOBS_URL}?metadata%5Bteam%5D=ml"
    mock_api.get(url, payload=page_of())
    await collect(api.fine_tuning.jobs.list(metadata={"team": "ml"}))
    assert [[("metadata[team]", "ml")]] == [
        parse_qsl(urlsplit(request.url).query) for request in wire.sent
    ]


@pytest.mark.asyncio
async def test_jobs_list_fetches_the_next_page_after_the_last_id(
    mock_api: MockAPI, api: AsyncClient, wire: RecordingTransport
) -> None:
    """The second page is asked for with after=<last id of the first>, keeping limit and filters."""
    second = {**JOB_PAYLOAD, "id": "ftjob-older"}
    mock_api.get(
        f"{JOBS_URL}?limit=1&metadata%5Bteam%5D=ml", payload=page_of(JOB_PAYLOAD, has_more=True)
    )
    mock_api.get(
        f"{JOBS_URL}?after={JOB_ID}&limit=1&metadata%5Bteam%5D=ml", payload=page_of(second)
    )
    jobs = await collect(api.fine_tuning.jobs.list(limit=1, metadata={"team": "ml"}))
    assert [JOB_ID, "ftjob-older"] == [job.id for job in jobs]
    assert [
        url_parts(f"{JOBS_URL}?limit=1&metadata%5Bteam%5D=ml"),
        url_parts(f"{JOBS_URL}?after={JOB_ID}&limit=1&metadata%5Bteam%5D=ml"),
    ] == [url_parts(request.url) for request in wire.sent]


@pytest.mark.asyncio
@pytest.mark.parametrize("resource", ["events", "checkpoints"])
@pytest.mark.parametrize(
    ("kwargs", "query"),
    [
        pytest.param({}, "", id="no-query"),
        pytest.param({"limit": 3}, "?limit=3", id="limit"),
        pytest.param({"after": "ft-x"}, "?after=ft-x", id="after"),
        pytest.param({"after": "ft-x", "limit": 50}, "?after=ft-x&limit=50", id="both"),
        pytest.param({"after": "a/b c"}, "?after=a%2Fb+c", id="after-escaped"),
    ],
)
async def test_job_sub_lists_query(
    *,
    mock_api: MockAPI,
    api: AsyncClient,
    wire: RecordingTransport,
    resource: str,
    kwargs: dict[str, Any],
    query: str,
) -> None:
    """list_events and checkpoints.list send limit and after, and the job id in the path."""
    url = f"{JOB_URL}/{resource}{query}"
    payload = EVENT_PAYLOAD if resource == "events" else CHECKPOINT_PAYLOAD
    mock_api.get(at(url), payload=page_of(payload))
    jobs = api.fine_tuning.jobs
    pager = (
        jobs.list_events(JOB_ID, **kwargs)
        if resource == "events"
        else jobs.checkpoints.list(JOB_ID, **kwargs)
    )
    items: list[Any] = await collect(pager)
    assert [EVENT if resource == "events" else JOB_CHECKPOINT] == items
    assert [url_parts(url)] == [url_parts(request.url) for request in wire.sent]


# --- checkpoint permissions ----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "project_ids",
    [
        pytest.param(["proj_a"], id="one"),
        pytest.param(["proj_a", "proj_b", "proj_c"], id="three"),
        pytest.param(("proj_a", "proj_b"), id="tuple"),
    ],
)
async def test_permissions_create_body(
    mock_api: MockAPI, api: AsyncClient, project_ids: list[str]
) -> None:
    """permissions.create POSTs {"project_ids": [...]} as a JSON list, nothing else."""
    mock_api.post(PERMISSIONS_URL, payload=PERMISSIONS_PAGE_PAYLOAD)
    result = await api.fine_tuning.checkpoints.permissions.create(
        CHECKPOINT, project_ids=project_ids
    )
    _, _, kwargs = only_call(mock_api)
    assert {"project_ids": list(project_ids)} == body_of(kwargs)
    assert "application/json" == headers_of(kwargs)["content-type"]
    assert PERMISSIONS_PAGE == result


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "query"),
    [
        pytest.param({}, "", id="no-query"),
        pytest.param({"project_id": "proj_a"}, "?project_id=proj_a", id="project_id"),
        pytest.param({"after": "cp_1"}, "?after=cp_1", id="after"),
        pytest.param({"limit": 10}, "?limit=10", id="limit"),
        pytest.param({"order": "ascending"}, "?order=ascending", id="ascending"),
        pytest.param({"order": "descending"}, "?order=descending", id="descending"),
        pytest.param(
            {"project_id": "proj_a", "after": "cp_1", "limit": 2, "order": "ascending"},
            "?project_id=proj_a&after=cp_1&limit=2&order=ascending",
            id="all",
        ),
    ],
)
async def test_permissions_list_query(
    mock_api: MockAPI,
    api: AsyncClient,
    wire: RecordingTransport,
    kwargs: dict[str, Any],
    query: str,
) -> None:
    """permissions.list sends project_id, after, limit and order in the query when given."""
    url = PERMISSIONS_URL + query
    mock_api.get(url, payload=PERMISSIONS_PAGE_PAYLOAD)
    items = await collect(api.fine_tuning.checkpoints.permissions.list(CHECKPOINT, **kwargs))
    assert [PERMISSION] == items
    assert "GET" == only_call(mock_api)[0]
    assert [url_parts(url)] == [url_parts(request.url) for request in wire.sent]


@pytest.mark.asyncio
async def test_permissions_delete_with_204_and_no_body_reports_deleted(
    mock_api: MockAPI, api: AsyncClient
) -> None:
    """A 204 with no body to a delete gives CheckpointPermissionDeleted(id, deleted=True)."""
    mock_api.delete(f"{PERMISSIONS_URL}/{PERMISSION.id}", status=204, body=b"")
    result = await api.fine_tuning.checkpoints.permissions.delete(
        PERMISSION.id, fine_tuned_model_checkpoint=CHECKPOINT
    )
    assert CheckpointPermissionDeleted(id=PERMISSION.id, deleted=True) == result
    method, _, kwargs = only_call(mock_api)
    assert "DELETE" == method
    assert kwargs["data"] is None


# --- ids in paths --------------------------------------------------------------------------------

IDS = [
    pytest.param("ftjob-abc123", "ftjob-abc123", id="plain"),
    pytest.param(CHECKPOINT, CHECKPOINT, id="colons-kept"),
    pytest.param(
        "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/abc",
        "arn:aws:bedrock:us-east-1:123456789012:model-customization-job%2Fabc",
        id="slash",
    ),
    pytest.param("a%2Fb", "a%252Fb", id="already-encoded"),
    pytest.param("job 1?x=y#z", "job%201%3Fx%3Dy%23z", id="space-query-fragment"),
    pytest.param("café", "caf%C3%A9", id="non-ascii"),
]

JOB_PATH_CALLS: list[tuple[str, str, str, Callable[[AsyncClient, str], Awaitable[object]]]] = [
    ("GET", "", "job", lambda c, i: c.fine_tuning.jobs.retrieve(i)),
    ("POST", "/cancel", "job", lambda c, i: c.fine_tuning.jobs.cancel(i)),
    ("POST", "/pause", "job", lambda c, i: c.fine_tuning.jobs.pause(i)),
    ("POST", "/resume", "job", lambda c, i: c.fine_tuning.jobs.resume(i)),
    ("GET", "/events", "list", lambda c, i: collect(c.fine_tuning.jobs.list_events(i))),
    ("GET", "/checkpoints", "list", lambda c, i: collect(c.fine_tuning.jobs.checkpoints.list(i))),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("raw", "encoded"), IDS)
@pytest.mark.parametrize(
    ("method", "suffix", "answer", "invoke"),
    [pytest.param(*call, id=call[1].strip("/") or "retrieve") for call in JOB_PATH_CALLS],
)
async def test_job_ids_are_percent_encoded_in_the_path(
    *,
    mock_api: MockAPI,
    api: AsyncClient,
    wire: RecordingTransport,
    raw: str,
    encoded: str,
    method: str,
    suffix: str,
    answer: str,
    invoke: Callable[[AsyncClient, str], Awaitable[object]],
) -> None:
    """A job id is one path segment: '/' and other reserved characters encoded, ':' kept."""
    url = f"{JOBS_URL}/{encoded}{suffix}"
    mock_api.add(at(url), method, payload=JOB_PAYLOAD if answer == "job" else page_of())
    await invoke(api, raw)
    assert [url] == [request.url for request in wire.sent]
    assert [url] == [str(call_url) for _, call_url, _ in mock_api.calls()]


@pytest.mark.asyncio
@pytest.mark.parametrize(("raw", "encoded"), IDS)
async def test_checkpoint_and_permission_ids_are_percent_encoded(
    mock_api: MockAPI, api: AsyncClient, wire: RecordingTransport, raw: str, encoded: str
) -> None:
    """Permission calls encode the checkpoint and permission ids as single path segments."""
    base = f"{BASE_URL}/fine_tuning/checkpoints/{encoded}/permissions"
    mock_api.post(at(base), payload=PERMISSIONS_PAGE_PAYLOAD)
    mock_api.get(at(base), payload=PERMISSIONS_PAGE_PAYLOAD)
    mock_api.delete(at(f"{base}/{encoded}"), status=204)
    permissions = api.fine_tuning.checkpoints.permissions
    await permissions.create(raw, project_ids=["proj_a"])
    await collect(permissions.list(raw))
    await permissions.delete(raw, fine_tuned_model_checkpoint=raw)
    assert [base, base, f"{base}/{encoded}"] == [request.url for request in wire.sent]
    assert ["POST", "GET", "DELETE"] == [request.method for request in wire.sent]


@pytest.mark.asyncio
async def test_base_url_path_is_kept_and_trailing_slash_ignored(
    mock_api: MockAPI, wire: RecordingTransport
) -> None:
    """A base URL with a path (and a trailing slash) keeps the path before the API path."""
    url = "http://127.0.0.1:8080/custom/v1/fine_tuning/jobs/ftjob-abc123"
    mock_api.get(url, payload=JOB_PAYLOAD)
    async with AsyncClient(
        api_key=API_KEY, base_url="http://127.0.0.1:8080/custom/v1/", transport=wire
    ) as client:
        assert JOB == await client.fine_tuning.jobs.retrieve(JOB_ID)
    assert [url] == [request.url for request in wire.sent]
