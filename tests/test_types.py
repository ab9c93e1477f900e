"""Structuring recorded payloads into finetune_async.types' records (docs/compat.md, "Parsing")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from finetune_async import types
from finetune_async._converter import converter
from finetune_async.types import (
    Batch,
    BatchError,
    BatchErrors,
    BatchInputTokensDetails,
    BatchOutputTokensDetails,
    BatchRequest,
    BatchRequestCounts,
    BatchResult,
    BatchStatus,
    BatchUsage,
    CheckpointMetrics,
    CheckpointPermission,
    CheckpointPermissionDeleted,
    DpoHyperparameters,
    DpoMethod,
    FileDeleted,
    FileObject,
    FineTuningIntegration,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    FineTuningJobEventLevel,
    FineTuningJobEventType,
    FineTuningJobStatus,
    Hyperparameters,
    JobError,
    JobUpdate,
    Method,
    MethodType,
    Model,
    ModelDeleted,
    Page,
    ReasoningEffort,
    ReinforcementHyperparameters,
    ReinforcementMethod,
    StepMetrics,
    SupervisedHyperparameters,
    SupervisedMethod,
    WandbIntegration,
    WebhookEvent,
    WebhookEventData,
)

PAYLOADS = Path(__file__).parent / "payloads"
JOB_FILES = sorted(path.name for path in PAYLOADS.glob("job_*.json"))

OPENAI_ORG = "org-4Qk2mZt8sYbN1aL0cR7vXw3E"
AZURE_ORG = "org-9d7c3a1b5e2f4d6a8c0b1e3f"
TRAINING_FILE = "file-BK7bzQj3FfZFXr7DbL6xJwfo"
VALIDATION_FILE = "file-2kVqE9mTnR4sB7wJ1xHcL6pZ"
AUTO_SUPERVISED = Method(
    type=MethodType.SUPERVISED,
    supervised=SupervisedMethod(
        hyperparameters=SupervisedHyperparameters(
            batch_size="auto", learning_rate_multiplier="auto", n_epochs="auto"
        )
    ),
)


def load(name: str) -> Any:
    """Return the recorded payload ``name`` as parsed JSON."""
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def load_job(name: str) -> FineTuningJob:
    """Return the recorded job payload ``name`` structured into a ``FineTuningJob``."""
    return converter.structure(load(name), FineTuningJob)


def typed(value: object) -> tuple[object, type]:
    """Pair a value with its exact type, so ``3 == 3.0`` and ``"a" == StrEnum("a")`` cannot pass."""
    return value, type(value)


# --- every payload ------------------------------------------------------------------------------

OTHER_PAYLOADS: list[tuple[str, Any]] = [
    ("checkpoint_metrics_partial.json", Page[FineTuningJobCheckpoint]),
    ("checkpoints_list.json", Page[FineTuningJobCheckpoint]),
    ("event_unknown_level_and_type.json", Page[FineTuningJobEvent]),
    ("events_list.json", Page[FineTuningJobEvent]),
    ("jobs_list_empty.json", Page[FineTuningJob]),
    ("jobs_list_has_more_missing.json", Page[FineTuningJob]),
    ("permission_deleted.json", CheckpointPermissionDeleted),
    ("permissions_list.json", Page[CheckpointPermission]),
]


def test_every_payload_file_is_structured_by_a_test() -> None:
    """Every file in tests/payloads is either a job payload or listed with its record type."""
    listed = set(JOB_FILES) | {name for name, _ in OTHER_PAYLOADS}
    # batch_*, file_* and model_* payloads are covered by test_types_batches_files.py.
    mine = [
        path.name
        for path in PAYLOADS.glob("*.json")
        if not path.name.startswith(("batch_", "file_", "model_"))
    ]
    assert sorted(mine) == sorted(listed)


@pytest.mark.parametrize("name", JOB_FILES)
def test_job_payload_structures_and_keeps_id(name: str) -> None:
    """Every recorded job structures into a FineTuningJob whose id is exactly the one sent."""
    payload = load(name)
    job = converter.structure(payload, FineTuningJob)
    assert FineTuningJob is type(job)
    assert payload["id"] == job.id


@pytest.mark.parametrize(("name", "into"), OTHER_PAYLOADS, ids=[n for n, _ in OTHER_PAYLOADS])
def test_list_and_delete_payloads_structure(name: str, into: Any) -> None:
    """Every recorded list or delete answer structures into its record without error."""
    payload = load(name)
    record = converter.structure(payload, into)
    assert payload["object"] == record.object


@pytest.mark.parametrize("name", JOB_FILES)
def test_job_survives_an_unstructure_structure_round_trip(name: str) -> None:
    """A structured job dumped to JSON by the converter structures back to an equal job."""
    job = load_job(name)
    assert job == converter.loads(converter.dumps(job), FineTuningJob)


# --- status: open enum --------------------------------------------------------------------------

KNOWN_STATUSES: list[tuple[str, FineTuningJobStatus]] = [
    ("job_arn_id.json", FineTuningJobStatus.RUNNING),
    ("job_dpo_method.json", FineTuningJobStatus.QUEUED),
    ("job_error_all_null.json", FineTuningJobStatus.QUEUED),
    ("job_error_empty_object.json", FineTuningJobStatus.VALIDATING_FILES),
    ("job_error_string.json", FineTuningJobStatus.FAILED),
    ("job_extra_unknown_keys.json", FineTuningJobStatus.RUNNING),
    ("job_float_timestamps.json", FineTuningJobStatus.SUCCEEDED),
    ("job_hyperparameters_auto_and_numbers.json", FineTuningJobStatus.RUNNING),
    ("job_null_timestamps.json", FineTuningJobStatus.QUEUED),
    ("job_object_finetune.json", FineTuningJobStatus.RUNNING),
    ("job_object_missing.json", FineTuningJobStatus.RUNNING),
    ("job_openai_cancelled.json", FineTuningJobStatus.CANCELLED),
    ("job_openai_failed.json", FineTuningJobStatus.FAILED),
    ("job_openai_succeeded.json", FineTuningJobStatus.SUCCEEDED),
    ("job_paused.json", FineTuningJobStatus.PAUSED),
    ("job_reinforcement_method.json", FineTuningJobStatus.VALIDATING_FILES),
    ("job_uuid_id.json", FineTuningJobStatus.RUNNING),
    ("job_wandb_integrations.json", FineTuningJobStatus.RUNNING),
]

UNKNOWN_STATUSES: list[tuple[str, str]] = [
    ("job_azure_created.json", "created"),
    ("job_azure_pausing.json", "pausing"),
    ("job_azure_pending_organisation_id.json", "pending"),
    ("job_azure_resuming.json", "resuming"),
    ("job_mistral_uppercase_status.json", "RUNNING"),
    ("job_together_cancel_requested.json", "cancel_requested"),
    ("job_together_completed_ms_timestamps.json", "completed"),
    ("job_together_compressing.json", "compressing"),
    ("job_together_error.json", "error"),
    ("job_together_uploading.json", "uploading"),
    ("job_together_user_error.json", "user_error"),
]


def test_status_tables_cover_every_job_payload() -> None:
    """Each recorded job has its expected status in exactly one of the two status tables."""
    listed = [name for name, _ in KNOWN_STATUSES] + [name for name, _ in UNKNOWN_STATUSES]
    assert JOB_FILES == sorted(listed)


@pytest.mark.parametrize(("name", "expected"), KNOWN_STATUSES)
def test_known_status_becomes_the_enum_member(name: str, expected: FineTuningJobStatus) -> None:
    """A documented status (and ``paused``) structures into its FineTuningJobStatus member."""
    assert expected is load_job(name).status


@pytest.mark.parametrize(("name", "expected"), UNKNOWN_STATUSES)
def test_unknown_status_stays_the_exact_string(name: str, expected: str) -> None:
    """A provider's own status, upper case included, stays the plain string it was sent as."""
    assert typed(expected) == typed(load_job(name).status)


# --- timestamps, counts, ids, object ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("job_openai_succeeded.json", (1721764800, 1721768351, None)),
        ("job_azure_pausing.json", (1721764800, None, 1721771000)),
        (
            "job_together_completed_ms_timestamps.json",
            (1721764800123, 1721771234567, 1721771000000),
        ),
        ("job_arn_id.json", (1721764800000, None, None)),
        ("job_null_timestamps.json", (None, None, None)),
        ("job_float_timestamps.json", (1721764800, 1721768351, 1721768400)),
    ],
)
def test_timestamps_are_kept_as_sent(name: str, expected: tuple[int | None, ...]) -> None:
    """Seconds stay seconds, milliseconds stay milliseconds, null stays None, 1.0e9 becomes int."""
    job = load_job(name)
    actual = (job.created_at, job.finished_at, job.estimated_finish)
    assert [typed(value) for value in expected] == [typed(value) for value in actual]


def test_float_count_becomes_the_int_it_denotes() -> None:
    """``trained_tokens`` sent as 5768.0 is the int 5768."""
    assert typed(5768) == typed(load_job("job_float_timestamps.json").trained_tokens)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("job_arn_id.json", load("job_arn_id.json")["id"]),
        ("job_uuid_id.json", "2f1c7a9e-5b3d-4e8f-a6c2-9d0b1e4f7a35"),
        ("job_object_finetune.json", "ft-AF1WoRqd3aJAHsqc9NY7iL8F"),
    ],
)
def test_id_of_any_format_is_kept_verbatim(name: str, expected: str) -> None:
    """UUIDs, ``ft-`` ids and URL-encoded ARNs are kept exactly, percent signs included."""
    assert expected == load_job(name).id


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("job_openai_succeeded.json", "fine_tuning.job"),
        ("job_object_finetune.json", "finetune"),
        ("job_mistral_uppercase_status.json", "job"),
        ("job_object_missing.json", None),
    ],
)
def test_object_is_kept_as_sent_or_none(name: str, expected: str | None) -> None:
    """``object`` keeps the provider's spelling and is None when the server left it out."""
    assert expected == load_job(name).object


# --- organisation_id ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("job_azure_pending_organisation_id.json", AZURE_ORG),
        ("job_openai_succeeded.json", OPENAI_ORG),
        ("job_uuid_id.json", None),
        ("job_mistral_uppercase_status.json", None),
    ],
)
def test_organization_id_accepts_the_azure_spelling(name: str, expected: str | None) -> None:
    """Azure's ``organisation_id`` fills ``organization_id``; neither spelling gives None."""
    assert expected == load_job(name).organization_id


def test_organization_id_wire_name_wins_over_azure_spelling() -> None:
    """When both spellings are present, the documented ``organization_id`` is kept."""
    payload = {**load("job_azure_pending_organisation_id.json"), "organization_id": OPENAI_ORG}
    assert OPENAI_ORG == converter.structure(payload, FineTuningJob).organization_id


def test_organisation_id_is_read_inside_a_page() -> None:
    """The Azure spelling is also accepted for jobs nested in a list page."""
    page = converter.structure(load("jobs_list_has_more_missing.json"), Page[FineTuningJob])
    assert [OPENAI_ORG, AZURE_ORG] == [job.organization_id for job in page.data]


# --- error --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("job_openai_succeeded.json", None),
        ("job_paused.json", None),
        (
            "job_openai_failed.json",
            JobError(
                code="invalid_training_file",
                message="The job failed due to an invalid training file. Invalid file format. "
                "Example 12 is missing the 'messages' key.",
                param="training_file",
            ),
        ),
        (
            "job_error_string.json",
            JobError(message="Fine-tuning failed: the training file has fewer than 10 examples."),
        ),
        (
            "job_together_user_error.json",
            JobError(message="Training file has 3 lines with invalid JSON: 12, 13, 44"),
        ),
        ("job_error_empty_object.json", JobError()),
        ("job_error_all_null.json", JobError()),
        ("job_extra_unknown_keys.json", JobError()),
    ],
)
def test_error_variants(name: str, expected: JobError | None) -> None:
    """``error``: null is None, ``{}`` or all-null is ``JobError()``, a string is its message."""
    assert expected == load_job(name).error


# --- hyperparameters and methods ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "field", "expected"),
    [
        ("job_hyperparameters_auto_and_numbers.json", "batch_size", "auto"),
        ("job_hyperparameters_auto_and_numbers.json", "learning_rate_multiplier", 1.8),
        ("job_hyperparameters_auto_and_numbers.json", "n_epochs", 3),
        ("job_openai_succeeded.json", "batch_size", 1),
        ("job_together_completed_ms_timestamps.json", "batch_size", 16),
        ("job_together_completed_ms_timestamps.json", "learning_rate_multiplier", "auto"),
        ("job_arn_id.json", "learning_rate_multiplier", 1e-05),
    ],
)
def test_hyperparameters_are_kept_as_sent(name: str, field: str, expected: str | float) -> None:
    """``"auto"`` stays the string, an int stays an int and a float stays a float."""
    hyperparameters = load_job(name).hyperparameters
    assert hyperparameters is not None
    assert typed(expected) == typed(getattr(hyperparameters, field))


def test_supervised_method_hyperparameters_are_kept_as_sent() -> None:
    """The supervised method's hyperparameters mix ``"auto"``, an int and a float as sent."""
    method = load_job("job_hyperparameters_auto_and_numbers.json").method
    assert method is not None
    assert method.supervised is not None
    hyperparameters = method.supervised.hyperparameters
    assert hyperparameters is not None
    assert MethodType.SUPERVISED is method.type
    assert [typed("auto"), typed(1.8), typed(3)] == [
        typed(hyperparameters.batch_size),
        typed(hyperparameters.learning_rate_multiplier),
        typed(hyperparameters.n_epochs),
    ]


def test_unknown_hyperparameter_keys_leave_the_record_empty() -> None:
    """Mistral's own hyperparameter names are ignored, giving an all-None Hyperparameters."""
    assert Hyperparameters() == load_job("job_mistral_uppercase_status.json").hyperparameters


def test_dpo_method_is_parsed_into_dpo_records() -> None:
    """A ``dpo`` method structures into ``DpoMethod`` with its hyperparameters as sent."""
    job = load_job("job_dpo_method.json")
    expected = Method(
        type=MethodType.DPO,
        dpo=DpoMethod(
            hyperparameters=DpoHyperparameters(
                beta=0.1, batch_size="auto", learning_rate_multiplier="auto", n_epochs=2
            )
        ),
    )
    assert expected == job.method
    assert job.method is not None
    assert MethodType.DPO is job.method.type
    assert DpoMethod is type(job.method.dpo)
    assert job.method.dpo is not None
    assert job.method.dpo.hyperparameters is not None
    assert typed(2) == typed(job.method.dpo.hyperparameters.n_epochs)
    assert job.hyperparameters is None


def test_reinforcement_method_is_parsed_and_keeps_the_grader_dict() -> None:
    """A ``reinforcement`` method becomes a ``ReinforcementMethod``; its grader stays a dict."""
    payload = load("job_reinforcement_method.json")
    method = converter.structure(payload, FineTuningJob).method
    assert method is not None
    assert MethodType.REINFORCEMENT is method.type
    assert (None, None) == (method.supervised, method.dpo)
    reinforcement = method.reinforcement
    assert ReinforcementMethod is type(reinforcement)
    assert reinforcement is not None
    assert typed(payload["method"]["reinforcement"]["grader"]) == typed(reinforcement.grader)
    expected = ReinforcementHyperparameters(
        batch_size="auto",
        learning_rate_multiplier="auto",
        n_epochs=2,
        reasoning_effort=ReasoningEffort.MEDIUM,
        compute_multiplier=1.5,
        eval_interval="auto",
        eval_samples=4,
    )
    assert expected == reinforcement.hyperparameters
    assert reinforcement.hyperparameters is not None
    assert ReasoningEffort.MEDIUM is reinforcement.hyperparameters.reasoning_effort
    assert typed(1.5) == typed(reinforcement.hyperparameters.compute_multiplier)
    assert typed(4) == typed(reinforcement.hyperparameters.eval_samples)


def test_unknown_method_type_stays_a_string() -> None:
    """A method type the enum does not know is kept as the plain string."""
    payload = {**load("job_paused.json"), "method": {"type": "lora"}}
    method = converter.structure(payload, FineTuningJob).method
    assert method is not None
    assert typed("lora") == typed(method.type)


def test_wandb_integration_is_parsed() -> None:
    """A wandb integration structures into records; its extra ``run_id`` key is ignored."""
    expected = [
        FineTuningIntegration(
            type="wandb",
            wandb=WandbIntegration(
                project="my-wandb-project",
                name="ft-run-display-name",
                entity=None,
                tags=["first-experiment", "v2", "openai/finetune"],
            ),
        )
    ]
    assert expected == load_job("job_wandb_integrations.json").integrations


# --- whole records ------------------------------------------------------------------------------


def test_openai_succeeded_job_field_by_field() -> None:
    """The full OpenAI job structures into exactly the record its payload describes."""
    expected = FineTuningJob(
        id="ftjob-fpbNQ3H1GrMehXRf8cO97xTN",
        status=FineTuningJobStatus.SUCCEEDED,
        model="gpt-4o-mini-2024-07-18",
        created_at=1721764800,
        finished_at=1721768351,
        estimated_finish=None,
        fine_tuned_model="ft:gpt-4o-mini-2024-07-18:acme-corp:support-bot:9ABel2dg",
        organization_id=OPENAI_ORG,
        training_file=TRAINING_FILE,
        validation_file=VALIDATION_FILE,
        result_files=["file-Y8rXcPdD1kQhW3n6sTjLmA2f"],
        trained_tokens=5768,
        seed=683058546,
        error=None,
        hyperparameters=Hyperparameters(batch_size=1, learning_rate_multiplier=1.8, n_epochs=3),
        method=Method(
            type=MethodType.SUPERVISED,
            supervised=SupervisedMethod(
                hyperparameters=SupervisedHyperparameters(
                    batch_size=1, learning_rate_multiplier=1.8, n_epochs=3
                )
            ),
        ),
        integrations=[],
        metadata={"team": "support", "dataset": "tickets-2024-07"},
        object="fine_tuning.job",
    )
    assert expected == load_job("job_openai_succeeded.json")


def test_unknown_keys_are_ignored_at_every_level() -> None:
    """Extra keys on the job, its hyperparameters and its error neither raise nor leak."""
    expected = FineTuningJob(
        id="ftjob-Uk7nK3eY9sQ1wE5rT2yU8iOp",
        status=FineTuningJobStatus.RUNNING,
        model="gpt-4o-mini-2024-07-18",
        created_at=1721764800,
        finished_at=None,
        estimated_finish=1721768400,
        fine_tuned_model=None,
        organization_id=OPENAI_ORG,
        training_file=TRAINING_FILE,
        validation_file=None,
        result_files=[],
        trained_tokens=None,
        seed=1036326793,
        error=JobError(),
        hyperparameters=Hyperparameters(
            batch_size="auto", learning_rate_multiplier="auto", n_epochs=3
        ),
        method=AUTO_SUPERVISED,
        integrations=[],
        metadata=None,
        object="fine_tuning.job",
    )
    job = load_job("job_extra_unknown_keys.json")
    assert expected == job
    assert False is hasattr(job, "user_provided_suffix")


def test_mistral_job_field_by_field() -> None:
    """A Mistral job keeps its UUID, upper-case status and ``job`` object and drops its own keys."""
    expected = FineTuningJob(
        id="a4f0a3c8-7e2b-4d6a-9f1e-2c3b5d7e9f10",
        status="RUNNING",
        model="open-mistral-7b",
        created_at=1721764800,
        fine_tuned_model=None,
        trained_tokens=None,
        hyperparameters=Hyperparameters(),
        integrations=[],
        object="job",
    )
    assert expected == load_job("job_mistral_uppercase_status.json")


# --- pages --------------------------------------------------------------------------------------


def test_jobs_page_without_has_more() -> None:
    """A jobs list without ``has_more`` structures with ``has_more`` None and its jobs in order."""
    page = converter.structure(load("jobs_list_has_more_missing.json"), Page[FineTuningJob])
    assert page.has_more is None
    assert "list" == page.object
    assert ["ftjob-Lm1sT2jO3bS4hA5sM6oR7eZx", "ftjob-2b3c4d5e6f708192a3b4c5d6e7f8091a"] == [
        job.id for job in page.data
    ]
    assert [FineTuningJob, FineTuningJob] == [type(job) for job in page.data]
    assert [FineTuningJobStatus.QUEUED, "running"] == [job.status for job in page.data]
    assert FineTuningJobStatus.RUNNING is page.data[1].status
    assert {"key": "value"} == page.data[0].metadata


def test_empty_jobs_page() -> None:
    """An empty jobs list structures into a page with ``data == []``."""
    page = converter.structure(load("jobs_list_empty.json"), Page[FineTuningJob])
    assert Page[FineTuningJob](data=[], has_more=False, object="list") == page
    assert False is page.has_more


@pytest.mark.parametrize(
    ("index", "level", "kind"),
    [
        (0, FineTuningJobEventLevel.INFO, FineTuningJobEventType.MESSAGE),
        (1, FineTuningJobEventLevel.INFO, FineTuningJobEventType.METRICS),
        (2, FineTuningJobEventLevel.WARN, FineTuningJobEventType.MESSAGE),
        (3, FineTuningJobEventLevel.ERROR, FineTuningJobEventType.MESSAGE),
    ],
)
def test_event_level_and_type_become_enum_members(
    index: int, level: FineTuningJobEventLevel, kind: FineTuningJobEventType
) -> None:
    """Documented event levels and types structure into their enum members."""
    event = converter.structure(load("events_list.json"), Page[FineTuningJobEvent]).data[index]
    assert level is event.level
    assert kind is event.type


def test_events_page_keeps_data_as_sent() -> None:
    """Event ``data`` is kept as sent: null, a metrics dict, an empty dict."""
    payload = load("events_list.json")
    page = converter.structure(payload, Page[FineTuningJobEvent])
    assert True is page.has_more
    assert [None, payload["data"][1]["data"], {}, {}] == [event.data for event in page.data]
    expected = FineTuningJobEvent(
        id="ftevent-Mt3rKc8sQ2wE4rT6yU8iO0pA",
        created_at=1721768100,
        level=FineTuningJobEventLevel.INFO,
        message="Step 100/120: training loss=0.22, validation loss=0.31",
        type=FineTuningJobEventType.METRICS,
        data={
            "step": 100,
            "train_loss": 0.2214,
            "valid_loss": 0.3127,
            "total_steps": 120,
            "train_mean_token_accuracy": 0.9231,
            "valid_mean_token_accuracy": 0.8874,
        },
        object="fine_tuning.job.event",
    )
    assert expected == page.data[1]


def test_unknown_event_level_and_type_stay_strings() -> None:
    """An event level or type the enums do not know stays the plain string."""
    page = converter.structure(load("event_unknown_level_and_type.json"), Page[FineTuningJobEvent])
    (event,) = page.data
    assert [typed("debug"), typed("status_update")] == [typed(event.level), typed(event.type)]


def test_checkpoints_page_with_full_metrics() -> None:
    """A checkpoints list keeps first_id / last_id and every metric of every checkpoint."""
    expected = Page[FineTuningJobCheckpoint](
        data=[
            FineTuningJobCheckpoint(
                id="ftckpt_qtZ5Gyk4BLq1SfLFWp3RtO3P",
                created_at=1721768351,
                fine_tuned_model_checkpoint=(
                    "ft:gpt-4o-mini-2024-07-18:acme-corp:support-bot:9ABel2dg:ckpt-step-88"
                ),
                fine_tuning_job_id="ftjob-fpbNQ3H1GrMehXRf8cO97xTN",
                step_number=88,
                metrics=CheckpointMetrics(
                    step=88,
                    train_loss=0.478,
                    train_mean_token_accuracy=0.924,
                    valid_loss=10.112,
                    valid_mean_token_accuracy=0.145,
                    full_valid_loss=0.567,
                    full_valid_mean_token_accuracy=0.944,
                ),
                object="fine_tuning.job.checkpoint",
            ),
            FineTuningJobCheckpoint(
                id="ftckpt_enQCFmOTGj3syEpYVhBRLTSy",
                created_at=1721767000,
                fine_tuned_model_checkpoint=(
                    "ft:gpt-4o-mini-2024-07-18:acme-corp:support-bot:7q8mpxmy:ckpt-step-44"
                ),
                fine_tuning_job_id="ftjob-fpbNQ3H1GrMehXRf8cO97xTN",
                step_number=44,
                metrics=CheckpointMetrics(
                    step=44,
                    train_loss=0.912,
                    train_mean_token_accuracy=0.811,
                    valid_loss=1.204,
                    valid_mean_token_accuracy=0.702,
                    full_valid_loss=1.113,
                    full_valid_mean_token_accuracy=0.735,
                ),
                object="fine_tuning.job.checkpoint",
            ),
        ],
        has_more=True,
        object="list",
        first_id="ftckpt_qtZ5Gyk4BLq1SfLFWp3RtO3P",
        last_id="ftckpt_enQCFmOTGj3syEpYVhBRLTSy",
    )
    page = converter.structure(load("checkpoints_list.json"), Page[FineTuningJobCheckpoint])
    assert expected == page
    assert [typed(88), typed(44)] == [typed(c.step_number) for c in page.data]


def test_partial_checkpoint_metrics_leave_the_rest_none() -> None:
    """Metrics the server left out are None; those it sent are kept."""
    page = converter.structure(
        load("checkpoint_metrics_partial.json"), Page[FineTuningJobCheckpoint]
    )
    (checkpoint,) = page.data
    expected = CheckpointMetrics(full_valid_loss=0.134, full_valid_mean_token_accuracy=0.874)
    assert expected == checkpoint.metrics
    assert typed(2000) == typed(checkpoint.step_number)


def test_permissions_page() -> None:
    """A checkpoint permissions list structures into CheckpointPermission records."""
    expected = Page[CheckpointPermission](
        data=[
            CheckpointPermission(
                id="cp_zc4Q7MP6XxulcVzj4MZdwsAB",
                created_at=1721764867,
                project_id="proj_abGMw1llN8IrBb6SvvY5A1iH",
                object="checkpoint.permission",
            ),
            CheckpointPermission(
                id="cp_enQCFmOTGj3syEpYVhBRLTSy",
                created_at=1721764800,
                project_id="proj_iqGMw1llN8IrBb6SvvY5A1oF",
                object="checkpoint.permission",
            ),
        ],
        has_more=False,
        object="list",
        first_id="cp_zc4Q7MP6XxulcVzj4MZdwsAB",
        last_id="cp_enQCFmOTGj3syEpYVhBRLTSy",
    )
    assert expected == converter.structure(
        load("permissions_list.json"), Page[CheckpointPermission]
    )


@pytest.mark.parametrize("deleted", [True, False])
def test_permission_deleted(deleted: bool) -> None:
    """The delete answer keeps its id, object and the ``deleted`` flag the server sent."""
    payload = {**load("permission_deleted.json"), "deleted": deleted}
    expected = CheckpointPermissionDeleted(
        id="cp_zc4Q7MP6XxulcVzj4MZdwsAB", deleted=deleted, object="checkpoint.permission"
    )
    assert expected == converter.structure(payload, CheckpointPermissionDeleted)


# --- records are frozen and slotted -------------------------------------------------------------

RECORDS: list[Any] = [
    Batch(id="batch_abc123", status=BatchStatus.VALIDATING),
    BatchError(),
    BatchErrors(),
    BatchInputTokensDetails(),
    BatchOutputTokensDetails(),
    BatchRequest(custom_id="request-1", body={}),
    BatchRequestCounts(),
    BatchResult(custom_id="request-1"),
    BatchUsage(),
    CheckpointMetrics(),
    CheckpointPermission(id="cp_zc4Q7MP6XxulcVzj4MZdwsAB"),
    CheckpointPermissionDeleted(id="cp_zc4Q7MP6XxulcVzj4MZdwsAB"),
    DpoHyperparameters(),
    DpoMethod(),
    FileDeleted(id="file-abc123"),
    FileObject(id="file-abc123"),
    FineTuningIntegration(),
    FineTuningJob(id="ftjob-abc123", status=FineTuningJobStatus.QUEUED),
    FineTuningJobCheckpoint(id="ftckpt_qtZ5Gyk4BLq1SfLFWp3RtO3P"),
    FineTuningJobEvent(id="ftevent-abc123"),
    Hyperparameters(),
    JobError(),
    JobUpdate(job=None, previous_status=None),
    Method(type=MethodType.SUPERVISED),
    Model(id="ft:gpt-4o-mini-2024-07-18:org:suffix:abc123"),
    ModelDeleted(id="ft:gpt-4o-mini-2024-07-18:org:suffix:abc123"),
    Page[FineTuningJob](),
    ReinforcementHyperparameters(),
    ReinforcementMethod(),
    StepMetrics(step=1),
    SupervisedHyperparameters(),
    SupervisedMethod(),
    types.TrackedObject(
        kind="job",
        id="ftjob-abc123",
        status=None,
        terminal=False,
        delivered=True,
        polls=0,
        last_polled_at=None,
    ),
    types.TrackedUpdate(
        kind="job",
        id="ftjob-abc123",
        status="queued",
        previous_status=None,
        record=FineTuningJob(id="ftjob-abc123", status=FineTuningJobStatus.QUEUED),
        update_id="upd_1",
        terminal=False,
    ),
    WandbIntegration(project="my-wandb-project"),
    WebhookEvent(
        id="evt_1",
        type="batch.completed",
        created_at=1,
        data=WebhookEventData(id="batch_1", raw={"id": "batch_1"}),
        webhook_id="wh_1",
    ),
    WebhookEventData(id="batch_1", raw={"id": "batch_1"}),
]
RECORD_IDS = [type(record).__name__ for record in RECORDS]


def test_record_table_covers_every_record_class() -> None:
    """RECORDS holds one instance of every attrs class exported by finetune_async.types."""
    exported = sorted(name for name in types.__all__ if attrs.has(getattr(types, name)))
    assert exported == sorted(RECORD_IDS)


@pytest.mark.parametrize("record", RECORDS, ids=RECORD_IDS)
def test_record_is_frozen(record: Any) -> None:
    """Assigning to any field of a record raises FrozenInstanceError."""
    for field in attrs.fields(type(record)):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(record, field.name, None)


@pytest.mark.parametrize("record", RECORDS, ids=RECORD_IDS)
def test_record_is_slotted(record: Any) -> None:
    """Records use ``__slots__``: an instance has no ``__dict__``."""
    assert "__slots__" in vars(type(record))
    assert False is hasattr(record, "__dict__")


@pytest.mark.parametrize("field", [field.name for field in attrs.fields(FineTuningJob)])
def test_structured_job_is_frozen(field: str) -> None:
    """A job made by the converter is as frozen as one built by hand."""
    job = load_job("job_openai_succeeded.json")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(job, field, None)


# --- request records unstructure without their None fields --------------------------------------


def test_method_unstructures_without_none_fields() -> None:
    """A supervised method with only ``n_epochs`` set gives exactly the JSON a request needs."""
    method = Method(
        type="supervised",
        supervised=SupervisedMethod(hyperparameters=SupervisedHyperparameters(n_epochs=3)),
    )
    expected = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}
    assert expected == converter.unstructure(method)


def test_wandb_integration_unstructures_with_its_type() -> None:
    """An integration keeps its defaulted ``"type": "wandb"`` and drops the unset wandb fields."""
    integration = FineTuningIntegration(wandb=WandbIntegration(project="p"))
    assert {"type": "wandb", "wandb": {"project": "p"}} == converter.unstructure(integration)


# --- wrong shapes raise -------------------------------------------------------------------------

_SUCCEEDED = load("job_openai_succeeded.json")


@pytest.mark.parametrize(
    ("payload", "into"),
    [
        pytest.param([_SUCCEEDED], FineTuningJob, id="list-where-a-job-is-expected"),
        pytest.param("ftjob-abc123", FineTuningJob, id="string-where-a-job-is-expected"),
        pytest.param(
            {**_SUCCEEDED, "created_at": [1721764800]}, FineTuningJob, id="created_at-list"
        ),
        pytest.param({"status": "queued"}, FineTuningJob, id="id-missing"),
        pytest.param({**_SUCCEEDED, "error": 42}, FineTuningJob, id="error-number"),
        pytest.param(
            {**_SUCCEEDED, "result_files": "file-Y8rXcPdD1kQhW3n6sTjLmA2f"},
            FineTuningJob,
            id="result_files-string",
        ),
        pytest.param([_SUCCEEDED], Page[FineTuningJob], id="list-where-a-page-is-expected"),
        pytest.param(
            {"object": "list", "data": None, "has_more": False}, Page[FineTuningJob], id="data-null"
        ),
        pytest.param(
            {"object": "list", "data": _SUCCEEDED, "has_more": False},
            Page[FineTuningJob],
            id="data-object",
        ),
    ],
)
def test_wrong_shape_raises(payload: Any, into: Any) -> None:
    """A wrong-shaped payload raises; the client turns that into APIResponseValidationError."""
    # The client's single structuring call site catches Exception, so any exception will do.
    with pytest.raises(Exception):  # noqa: B017
        converter.structure(payload, into)
