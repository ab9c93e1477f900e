"""Client-side checks: bad input raises InvalidParameterError before anything is sent."""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

import pytest

from finetune_async import AsyncClient, InvalidParameterError
from finetune_async.types import (
    DpoHyperparameters,
    DpoMethod,
    FineTuningIntegration,
    Hyperparameters,
    Method,
    ReinforcementMethod,
    SupervisedHyperparameters,
    SupervisedMethod,
    WandbIntegration,
)
from tests.conftest import BASE_URL, MockAPI

if TYPE_CHECKING:
    from collections.abc import Callable

JOBS_URL = f"{BASE_URL}/fine_tuning/jobs"
REQUIRED: dict[str, Any] = {"model": "gpt-4o-mini-2024-07-18", "training_file": "file-abc123"}
JOB_PAYLOAD: dict[str, Any] = {"id": "ftjob-abc123", "status": "queued"}
GRADER: dict[str, Any] = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}
WANDB: dict[str, Any] = {"type": "wandb", "wandb": {"project": "ft"}}


def metadata_of(count: int) -> dict[str, str]:
    """Return metadata with ``count`` keys."""
    return {f"key{i}": "v" for i in range(count)}


def supervised(**hyper: Any) -> dict[str, Any]:
    """Return a supervised method dict with these hyperparameters."""
    return {"type": "supervised", "supervised": {"hyperparameters": hyper}}


def dpo(**hyper: Any) -> dict[str, Any]:
    """Return a DPO method dict with these hyperparameters."""
    return {"type": "dpo", "dpo": {"hyperparameters": hyper}}


def supervised_record(**hyper: Any) -> Method:
    """Return a supervised Method record with these hyperparameters."""
    return Method(
        type="supervised",
        supervised=SupervisedMethod(hyperparameters=SupervisedHyperparameters(**hyper)),
    )


def dpo_record(**hyper: Any) -> Method:
    """Return a DPO Method record with these hyperparameters."""
    return Method(type="dpo", dpo=DpoMethod(hyperparameters=DpoHyperparameters(**hyper)))


def assert_refused(info: pytest.ExceptionInfo[InvalidParameterError], param: str) -> None:
    """Check the error is also a ValueError and its message names ``param``."""
    assert isinstance(info.value, ValueError)
    assert param in str(info.value), str(info.value)
    assert info.value.param is not None
    assert info.value.param.startswith(param.split("[", maxsplit=1)[0])


# --- jobs.create ------------------------------------------------------------------------------

HYPER_CASES: list[tuple[str, str, Any]] = [
    # (id, hyperparameter, bad value)
    ("n_epochs-0", "n_epochs", 0),
    ("n_epochs-51", "n_epochs", 51),
    ("n_epochs-2.5", "n_epochs", 2.5),
    ("n_epochs-many", "n_epochs", "many"),
    ("n_epochs-true", "n_epochs", True),
    ("batch_size-0", "batch_size", 0),
    ("batch_size-257", "batch_size", 257),
    ("learning_rate_multiplier-0", "learning_rate_multiplier", 0),
    ("learning_rate_multiplier-minus-1", "learning_rate_multiplier", -1),
]


def _hyper_params() -> list[Any]:
    params = []
    for case, name, value in HYPER_CASES:
        params.extend(
            [
                pytest.param(
                    {"hyperparameters": {name: value}},
                    f"hyperparameters.{name}",
                    id=f"job-dict-{case}",
                ),
                pytest.param(
                    {"hyperparameters": Hyperparameters(**{name: value})},
                    f"hyperparameters.{name}",
                    id=f"job-record-{case}",
                ),
                pytest.param(
                    {"method": supervised(**{name: value})},
                    f"method.supervised.hyperparameters.{name}",
                    id=f"supervised-dict-{case}",
                ),
                pytest.param(
                    {"method": supervised_record(**{name: value})},
                    f"method.supervised.hyperparameters.{name}",
                    id=f"supervised-record-{case}",
                ),
                pytest.param(
                    {"method": dpo(**{name: value})},
                    f"method.dpo.hyperparameters.{name}",
                    id=f"dpo-dict-{case}",
                ),
                pytest.param(
                    {"method": dpo_record(**{name: value})},
                    f"method.dpo.hyperparameters.{name}",
                    id=f"dpo-record-{case}",
                ),
            ]
        )
    return params


BAD_CREATE = [
    # metadata
    pytest.param({"metadata": metadata_of(17)}, "metadata", id="metadata-17-keys"),
    pytest.param({"metadata": {"k" * 65: "v"}}, "metadata", id="metadata-65-char-key"),
    pytest.param({"metadata": {"k": "v" * 513}}, "metadata[k]", id="metadata-513-char-value"),
    pytest.param({"metadata": {"k": 1}}, "metadata[k]", id="metadata-int-value"),
    pytest.param({"metadata": {"k": None}}, "metadata[k]", id="metadata-none-value"),
    pytest.param({"metadata": {1: "v"}}, "metadata", id="metadata-int-key"),
    pytest.param({"metadata": ["k", "v"]}, "metadata", id="metadata-not-a-dict"),
    # integrations
    pytest.param({"integrations": [WANDB] * 6}, "integrations", id="integrations-6"),
    pytest.param(
        {"integrations": [{"type": "wandb", "wandb": {}}]},
        "integrations[0].wandb",
        id="wandb-without-project",
    ),
    pytest.param(
        {"integrations": [{"type": "wandb", "wandb": {"project": ""}}]},
        "integrations[0].wandb.project",
        id="wandb-empty-project",
    ),
    pytest.param(
        {"integrations": [{"type": "wandb"}]}, "integrations[0].wandb", id="wandb-block-missing"
    ),
    pytest.param(
        {"integrations": [WANDB, FineTuningIntegration(type="wandb")]},
        "integrations[1].wandb",
        id="wandb-record-without-settings",
    ),
    pytest.param(
        {"integrations": [FineTuningIntegration(wandb=WandbIntegration(project=""))]},
        "integrations[0].wandb.project",
        id="wandb-record-empty-project",
    ),
    pytest.param({"integrations": WANDB}, "integrations", id="integrations-not-a-list"),
    # hyperparameters, in both places and both spellings
    *_hyper_params(),
    # dpo beta
    pytest.param({"method": dpo(beta=0)}, "method.dpo.hyperparameters.beta", id="beta-0"),
    pytest.param({"method": dpo(beta=2.5)}, "method.dpo.hyperparameters.beta", id="beta-2.5"),
    # NaN and infinity are no JSON numbers (orjson would send null): refuse them.
    pytest.param(
        {"method": dpo(beta=float("nan"))}, "method.dpo.hyperparameters.beta", id="beta-nan"
    ),
    pytest.param(
        {"hyperparameters": {"learning_rate_multiplier": float("nan")}},
        "hyperparameters.learning_rate_multiplier",
        id="learning_rate_multiplier-nan",
    ),
    pytest.param(
        {"method": supervised_record(learning_rate_multiplier=float("inf"))},
        "method.supervised.hyperparameters.learning_rate_multiplier",
        id="learning_rate_multiplier-inf-record",
    ),
    pytest.param(
        {"method": dpo_record(beta=0)}, "method.dpo.hyperparameters.beta", id="beta-0-record"
    ),
    pytest.param(
        {"method": dpo_record(beta=2.5)}, "method.dpo.hyperparameters.beta", id="beta-2.5-record"
    ),
    # hyperparameters that do not belong to the method
    pytest.param(
        {"method": supervised(beta=0.1)},
        "method.supervised.hyperparameters.beta",
        id="beta-under-supervised",
    ),
    pytest.param({"hyperparameters": {"beta": 0.1}}, "hyperparameters.beta", id="beta-job-level"),
    pytest.param(
        {"method": dpo(reasoning_effort="low")},
        "method.dpo.hyperparameters.reasoning_effort",
        id="reasoning-effort-under-dpo",
    ),
    # method shape
    pytest.param({"method": {"type": "unknown"}}, "method.type", id="method-type-unknown"),
    pytest.param({"method": Method(type="unknown")}, "method.type", id="method-record-unknown"),
    pytest.param({"method": {}}, "method.type", id="method-type-missing"),
    pytest.param({"method": "supervised"}, "method", id="method-a-string"),
    pytest.param(
        {"method": {"type": "supervised", "dpo": {"hyperparameters": {"beta": 0.1}}}},
        "method.dpo",
        id="dpo-block-with-type-supervised",
    ),
    pytest.param(
        {"method": Method(type="supervised", dpo=DpoMethod())},
        "method.dpo",
        id="dpo-record-with-type-supervised",
    ),
    pytest.param(
        {"method": {"type": "reinforcement"}},
        "method.reinforcement",
        id="reinforcement-without-block",
    ),
    pytest.param(
        {"method": {"type": "reinforcement", "reinforcement": {}}},
        "method.reinforcement.grader",
        id="reinforcement-without-grader",
    ),
    pytest.param(
        {"method": Method(type="reinforcement", reinforcement=ReinforcementMethod())},
        "method.reinforcement.grader",
        id="reinforcement-record-without-grader",
    ),
    pytest.param(
        {
            "method": {
                "type": "reinforcement",
                "reinforcement": {
                    "grader": GRADER,
                    "hyperparameters": {"reasoning_effort": "extreme"},
                },
            }
        },
        "method.reinforcement.hyperparameters.reasoning_effort",
        id="reinforcement-bad-reasoning-effort",
    ),
    # suffix
    pytest.param({"suffix": "s" * 65}, "suffix", id="suffix-65"),
    pytest.param({"suffix": ""}, "suffix", id="suffix-empty"),
    pytest.param({"suffix": 7}, "suffix", id="suffix-int"),
    # seed
    pytest.param({"seed": -1}, "seed", id="seed-minus-1"),
    pytest.param({"seed": 2**31}, "seed", id="seed-2-31"),
    pytest.param({"seed": True}, "seed", id="seed-true"),
    pytest.param({"seed": 1.0}, "seed", id="seed-float"),
    pytest.param({"seed": "42"}, "seed", id="seed-string"),
    # files and model
    pytest.param({"training_file": 123}, "training_file", id="training_file-int"),
    pytest.param({"training_file": None}, "training_file", id="training_file-none"),
    pytest.param({"training_file": b"file-abc"}, "training_file", id="training_file-bytes"),
    pytest.param({"training_file": ["file-abc"]}, "training_file", id="training_file-list"),
    pytest.param({"training_file": ""}, "training_file", id="training_file-empty"),
    pytest.param({"training_file": "   "}, "training_file", id="training_file-blank"),
    pytest.param({"validation_file": ""}, "validation_file", id="validation_file-empty"),
    pytest.param({"validation_file": 5}, "validation_file", id="validation_file-int"),
    pytest.param({"model": ""}, "model", id="model-empty"),
    pytest.param({"model": " "}, "model", id="model-blank"),
    pytest.param({"model": None}, "model", id="model-none"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("overrides", "param"), BAD_CREATE)
async def test_create_refuses_bad_parameters_without_sending(
    mock_api: MockAPI, client: AsyncClient, overrides: dict[str, Any], param: str
) -> None:
    """A create breaking a rule raises InvalidParameterError naming the parameter; none is sent."""
    with pytest.raises(InvalidParameterError) as info:
        await client.fine_tuning.jobs.create(**{**REQUIRED, **overrides})
    assert_refused(info, param)
    assert [] == mock_api.calls()


GOOD_CREATE = [
    pytest.param({"metadata": metadata_of(16)}, id="metadata-16-keys"),
    pytest.param({"metadata": {"k" * 64: "v"}}, id="metadata-64-char-key"),
    pytest.param({"metadata": {"k": "v" * 512}}, id="metadata-512-char-value"),
    pytest.param({"metadata": {"k": ""}}, id="metadata-empty-value"),
    pytest.param({"integrations": [WANDB] * 5}, id="integrations-5"),
    pytest.param({"hyperparameters": {"n_epochs": 1}}, id="job-n_epochs-1"),
    pytest.param({"hyperparameters": {"n_epochs": 50}}, id="job-n_epochs-50"),
    pytest.param({"hyperparameters": {"n_epochs": "auto"}}, id="job-n_epochs-auto"),
    pytest.param({"method": supervised(n_epochs=1)}, id="supervised-n_epochs-1"),
    pytest.param({"method": supervised(n_epochs=50)}, id="supervised-n_epochs-50"),
    pytest.param({"method": supervised(n_epochs="auto")}, id="supervised-n_epochs-auto"),
    pytest.param({"method": dpo(n_epochs=1)}, id="dpo-n_epochs-1"),
    pytest.param({"method": dpo(n_epochs=50)}, id="dpo-n_epochs-50"),
    pytest.param({"method": dpo(n_epochs="auto")}, id="dpo-n_epochs-auto"),
    pytest.param(
        {"method": supervised(batch_size=1, learning_rate_multiplier=0.01)},
        id="batch_size-1",
    ),
    pytest.param({"method": supervised(batch_size=256)}, id="batch_size-256"),
    pytest.param({"method": supervised(learning_rate_multiplier=2)}, id="lrm-int"),
    pytest.param({"method": dpo(beta=2)}, id="beta-2"),
    pytest.param({"method": dpo(beta=0.01)}, id="beta-0.01"),
    pytest.param({"method": dpo(beta="auto")}, id="beta-auto"),
    pytest.param(
        {"method": {"type": "reinforcement", "reinforcement": {"grader": GRADER}}},
        id="reinforcement-with-grader",
    ),
    pytest.param({"suffix": "s" * 64}, id="suffix-64"),
    pytest.param({"suffix": "s"}, id="suffix-1"),
    pytest.param({"seed": 0}, id="seed-0"),
    pytest.param({"seed": 2147483647}, id="seed-max"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("overrides", GOOD_CREATE)
async def test_create_accepts_boundary_values_and_sends_them(
    mock_api: MockAPI, client: AsyncClient, overrides: dict[str, Any]
) -> None:
    """Values at the edge of each rule are accepted and sent unchanged."""
    mock_api.post(JOBS_URL, payload=JOB_PAYLOAD)
    await client.fine_tuning.jobs.create(**{**REQUIRED, **overrides})
    calls = mock_api.calls()
    assert ["POST"] == [method for method, _, _ in calls]
    assert {**REQUIRED, **overrides} == json.loads(calls[0][2]["data"])


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(
            supervised_record(n_epochs=1), supervised(n_epochs=1), id="supervised-n_epochs-1"
        ),
        pytest.param(
            supervised_record(n_epochs=50), supervised(n_epochs=50), id="supervised-n_epochs-50"
        ),
        pytest.param(dpo_record(n_epochs="auto"), dpo(n_epochs="auto"), id="dpo-n_epochs-auto"),
        pytest.param(dpo_record(beta=2), dpo(beta=2), id="dpo-beta-2"),
    ],
)
async def test_create_accepts_boundary_values_in_records(
    mock_api: MockAPI, client: AsyncClient, record: Method, expected: dict[str, Any]
) -> None:
    """Records holding boundary values are accepted and sent as their dicts."""
    mock_api.post(JOBS_URL, payload=JOB_PAYLOAD)
    await client.fine_tuning.jobs.create(**REQUIRED, method=record)
    calls = mock_api.calls()
    assert 1 == len(calls)
    assert {**REQUIRED, "method": expected} == json.loads(calls[0][2]["data"])


# --- lists ------------------------------------------------------------------------------------

LISTS = [
    pytest.param(lambda c, kw: c.fine_tuning.jobs.list(**kw), id="jobs.list"),
    pytest.param(
        lambda c, kw: c.fine_tuning.jobs.list_events("ftjob-abc", **kw), id="jobs.list_events"
    ),
    pytest.param(
        lambda c, kw: c.fine_tuning.jobs.checkpoints.list("ftjob-abc", **kw),
        id="jobs.checkpoints.list",
    ),
    pytest.param(
        lambda c, kw: c.fine_tuning.checkpoints.permissions.list("ft:gpt-4o-mini:org::x", **kw),
        id="permissions.list",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize("make_list", LISTS)
@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": -5}, "limit", id="limit-minus-5"),
        pytest.param({"limit": True}, "limit", id="limit-true"),
        pytest.param({"limit": "10"}, "limit", id="limit-string"),
        pytest.param({"limit": 2.0}, "limit", id="limit-float"),
        pytest.param({"after": ""}, "after", id="after-empty"),
        pytest.param({"after": "  "}, "after", id="after-blank"),
        pytest.param({"after": 5}, "after", id="after-int"),
    ],
)
async def test_lists_refuse_bad_paging_at_the_call(
    mock_api: MockAPI,
    client: AsyncClient,
    make_list: Callable[[AsyncClient, dict[str, Any]], object],
    kwargs: dict[str, Any],
    param: str,
) -> None:
    """Every list raises at the call itself (before iteration) for a bad limit or after."""
    with pytest.raises(InvalidParameterError) as info:
        make_list(client, kwargs)
    assert_refused(info, param)
    assert [] == mock_api.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("metadata", "param"),
    [
        pytest.param(metadata_of(17), "metadata", id="17-keys"),
        pytest.param({"k" * 65: "v"}, "metadata", id="65-char-key"),
        pytest.param({"k": "v" * 513}, "metadata[k]", id="513-char-value"),
        pytest.param({"k": 1}, "metadata[k]", id="int-value"),
    ],
)
async def test_jobs_list_refuses_bad_metadata_filter_at_the_call(
    mock_api: MockAPI, client: AsyncClient, metadata: dict[Any, Any], param: str
) -> None:
    """jobs.list checks its metadata filter with the create limits, at the call."""
    with pytest.raises(InvalidParameterError) as info:
        client.fine_tuning.jobs.list(metadata=metadata)
    assert_refused(info, param)
    assert [] == mock_api.calls()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "order", [pytest.param("up", id="up"), pytest.param("ASCENDING", id="upper"), 1]
)
async def test_permissions_list_refuses_an_unknown_order(
    mock_api: MockAPI, client: AsyncClient, order: Any
) -> None:
    """permissions.list accepts only order "ascending" or "descending"."""
    with pytest.raises(InvalidParameterError) as info:
        client.fine_tuning.checkpoints.permissions.list("ft:x", order=order)
    assert_refused(info, "order")
    assert [] == mock_api.calls()


@pytest.mark.asyncio
async def test_lists_accept_limit_1(mock_api: MockAPI, client: AsyncClient) -> None:
    """limit=1, the smallest page, is sent."""
    mock_api.get(f"{JOBS_URL}?limit=1", payload={"object": "list", "data": []})
    assert [] == [job async for job in client.fine_tuning.jobs.list(limit=1)]
    assert 1 == len(mock_api.calls())


# --- ids ----------------------------------------------------------------------------------------

ID_CALLS = [
    pytest.param(lambda c, i: c.fine_tuning.jobs.retrieve(i), "job_id", id="retrieve"),
    pytest.param(lambda c, i: c.fine_tuning.jobs.cancel(i), "job_id", id="cancel"),
    pytest.param(lambda c, i: c.fine_tuning.jobs.pause(i), "job_id", id="pause"),
    pytest.param(lambda c, i: c.fine_tuning.jobs.resume(i), "job_id", id="resume"),
    pytest.param(lambda c, i: c.fine_tuning.jobs.list_events(i), "job_id", id="list_events"),
    pytest.param(
        lambda c, i: c.fine_tuning.jobs.checkpoints.list(i), "job_id", id="checkpoints.list"
    ),
    pytest.param(
        lambda c, i: c.fine_tuning.checkpoints.permissions.create(i, project_ids=["proj_a"]),
        "fine_tuned_model_checkpoint",
        id="permissions.create",
    ),
    pytest.param(
        lambda c, i: c.fine_tuning.checkpoints.permissions.list(i),
        "fine_tuned_model_checkpoint",
        id="permissions.list",
    ),
    pytest.param(
        lambda c, i: c.fine_tuning.checkpoints.permissions.list("ft:x", project_id=i),
        "project_id",
        id="permissions.list-project_id",
    ),
    pytest.param(
        lambda c, i: c.fine_tuning.checkpoints.permissions.delete(
            i, fine_tuned_model_checkpoint="ft:x"
        ),
        "permission_id",
        id="permissions.delete-permission_id",
    ),
    pytest.param(
        lambda c, i: c.fine_tuning.checkpoints.permissions.delete(
            "cp_1", fine_tuned_model_checkpoint=i
        ),
        "fine_tuned_model_checkpoint",
        id="permissions.delete-checkpoint",
    ),
]


async def call_now(result: object) -> None:
    """Await ``result`` when it is a coroutine (lists raised already, at the call)."""
    if inspect.isawaitable(result):
        await result


BAD_IDS: list[tuple[str, object]] = [
    ("empty", ""),
    ("spaces", "   "),
    ("whitespace", "\t\n"),
    ("int", 42),
]


def _bad_id_params() -> list[Any]:
    params: list[Any] = []
    for entry in ID_CALLS:
        call, param = entry.values
        bad = BAD_IDS if param == "project_id" else [*BAD_IDS, ("none", None)]
        params.extend(
            pytest.param(call, param, value, id=f"{entry.id}-{name}") for name, value in bad
        )
    return params


@pytest.mark.asyncio
@pytest.mark.parametrize(("call", "param", "bad_id"), _bad_id_params())
async def test_calls_refuse_empty_or_non_string_ids(
    mock_api: MockAPI,
    client: AsyncClient,
    call: Callable[[AsyncClient, Any], object],
    param: str,
    bad_id: object,
) -> None:
    """An empty, blank or non-string id raises InvalidParameterError naming it; nothing is sent."""
    with pytest.raises(InvalidParameterError) as info:
        await call_now(call(client, bad_id))
    assert_refused(info, param)
    assert [] == mock_api.calls()


# --- checkpoint permissions -------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("project_ids", "param"),
    [
        pytest.param([], "project_ids", id="empty-list"),
        pytest.param((), "project_ids", id="empty-tuple"),
        pytest.param("proj", "project_ids", id="a-string"),
        pytest.param(None, "project_ids", id="none"),
        pytest.param(["proj_a", ""], "project_ids[1]", id="empty-id"),
        pytest.param(["proj_a", 7], "project_ids[1]", id="int-id"),
    ],
)
async def test_permissions_create_refuses_bad_project_ids(
    mock_api: MockAPI, client: AsyncClient, project_ids: Any, param: str
) -> None:
    """project_ids must be a non-empty list of non-empty strings; nothing is sent otherwise."""
    with pytest.raises(InvalidParameterError) as info:
        await client.fine_tuning.checkpoints.permissions.create("ft:x", project_ids=project_ids)
    assert_refused(info, param)
    assert [] == mock_api.calls()
