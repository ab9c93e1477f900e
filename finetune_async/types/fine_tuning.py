"""Records of the fine-tuning API: jobs and their parts, events, checkpoints, permissions.

Field names are the wire names. Every field a server might leave out has a default, so a partial
object from a provider structures instead of raising; enum-valued fields are open enums
(``SomeEnum | str``). Hyperparameters are kept as sent: ``"auto"`` or a number.

The request-side parts (``Method`` and its hyperparameters, ``FineTuningIntegration``) are the same
records: pass them, or plain dicts of the same shape, to ``fine_tuning.jobs.create``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import attrs

from ._enums import (
    FineTuningJobEventLevel,
    FineTuningJobEventType,
    FineTuningJobStatus,
    MethodType,
    ReasoningEffort,
)

__all__ = [
    "CheckpointMetrics",
    "CheckpointPermission",
    "CheckpointPermissionDeleted",
    "DpoHyperparameters",
    "DpoMethod",
    "FineTuningIntegration",
    "FineTuningJob",
    "FineTuningJobCheckpoint",
    "FineTuningJobEvent",
    "HyperparameterValue",
    "Hyperparameters",
    "JobError",
    "JobUpdate",
    "Method",
    "ReinforcementHyperparameters",
    "ReinforcementMethod",
    "SupervisedHyperparameters",
    "SupervisedMethod",
    "WandbIntegration",
]

HyperparameterValue: TypeAlias = str | int | float
"""``"auto"`` or a number, kept exactly as sent (an int stays an int)."""


@attrs.frozen
class JobError:
    """Why a job failed. Every member may be null; a server sending a bare string gets ``message``.

    Attributes:
        code: A machine-readable error code.
        message: A human-readable error message.
        param: The parameter that was invalid (usually ``training_file``), or None.
    """

    code: str | None = None
    message: str | None = None
    param: str | None = None


@attrs.frozen
class Hyperparameters:
    """The job-level hyperparameters (deprecated on create in favour of ``method``)."""

    batch_size: HyperparameterValue | None = None
    learning_rate_multiplier: HyperparameterValue | None = None
    n_epochs: HyperparameterValue | None = None


@attrs.frozen
class SupervisedHyperparameters:
    """Hyperparameters of the supervised method."""

    batch_size: HyperparameterValue | None = None
    learning_rate_multiplier: HyperparameterValue | None = None
    n_epochs: HyperparameterValue | None = None


@attrs.frozen
class DpoHyperparameters:
    """Hyperparameters of the DPO method."""

    beta: HyperparameterValue | None = None
    batch_size: HyperparameterValue | None = None
    learning_rate_multiplier: HyperparameterValue | None = None
    n_epochs: HyperparameterValue | None = None


@attrs.frozen
class ReinforcementHyperparameters:
    """Hyperparameters of the reinforcement method."""

    batch_size: HyperparameterValue | None = None
    learning_rate_multiplier: HyperparameterValue | None = None
    n_epochs: HyperparameterValue | None = None
    reasoning_effort: ReasoningEffort | str | None = None
    compute_multiplier: HyperparameterValue | None = None
    eval_interval: HyperparameterValue | None = None
    eval_samples: HyperparameterValue | None = None


@attrs.frozen
class SupervisedMethod:
    """Configuration of the supervised method."""

    hyperparameters: SupervisedHyperparameters | None = None


@attrs.frozen
class DpoMethod:
    """Configuration of the DPO method."""

    hyperparameters: DpoHyperparameters | None = None


@attrs.frozen
class ReinforcementMethod:
    """Configuration of the reinforcement method.

    Attributes:
        grader: The grader, as the spec's JSON object (string_check, text_similarity, python,
            score_model or multi); kept as a dict because its shapes are many and still growing.
        hyperparameters: The method's hyperparameters.
    """

    grader: dict[str, Any] | None = None
    hyperparameters: ReinforcementHyperparameters | None = None


@attrs.frozen
class Method:
    """The fine-tuning method and its configuration; ``type`` names which part applies."""

    type: MethodType | str
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None


@attrs.frozen
class WandbIntegration:
    """Settings of the Weights and Biases integration."""

    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None


@attrs.frozen
class FineTuningIntegration:
    """One integration of a job; only ``wandb`` is documented today."""

    type: str = "wandb"
    wandb: WandbIntegration | None = None


@attrs.frozen
class FineTuningJob:
    """A fine-tuning job (``fine_tuning.job``).

    Timestamps are kept as sent: Unix seconds from OpenAI and Azure, milliseconds from some
    providers behind Portkey, or None. ``status`` is a ``FineTuningJobStatus`` when known, else the
    server's string (``"pending"``, ``"RUNNING"``...).
    """

    id: str
    status: FineTuningJobStatus | str
    model: str | None = None
    created_at: int | None = None
    finished_at: int | None = None
    estimated_finish: int | None = None
    fine_tuned_model: str | None = None
    organization_id: str | None = None
    training_file: str | None = None
    validation_file: str | None = None
    result_files: list[str] | None = None
    trained_tokens: int | None = None
    seed: int | None = None
    error: JobError | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    integrations: list[FineTuningIntegration] | None = None
    metadata: dict[str, str] | None = None
    object: str | None = None


@attrs.frozen
class JobUpdate:
    """One observed change of a watched job (``fine_tuning.jobs.watch``).

    Attributes:
        job: The job as last seen (None if a failing job was never seen).
        previous_status: Its status before this change (None at the first sighting).
        error: Set when the job's polls keep failing: the last exception. The job stays watched.
    """

    job: FineTuningJob | None
    previous_status: FineTuningJobStatus | str | None
    error: Exception | None = None


@attrs.frozen
class FineTuningJobEvent:
    """One event of a job (``fine_tuning.job.event``); ``data`` is the event's free-form JSON."""

    id: str
    created_at: int | None = None
    level: FineTuningJobEventLevel | str | None = None
    message: str | None = None
    type: FineTuningJobEventType | str | None = None
    data: Any = None
    object: str | None = None


@attrs.frozen
class CheckpointMetrics:
    """Metrics at a checkpoint's step; any of them may be missing."""

    step: int | float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


@attrs.frozen
class FineTuningJobCheckpoint:
    """A model checkpoint of a job (``fine_tuning.job.checkpoint``), ready to use."""

    id: str
    created_at: int | None = None
    fine_tuned_model_checkpoint: str | None = None
    fine_tuning_job_id: str | None = None
    step_number: int | None = None
    metrics: CheckpointMetrics | None = None
    object: str | None = None


@attrs.frozen
class CheckpointPermission:
    """A permission granting a project access to a checkpoint (``checkpoint.permission``)."""

    id: str
    created_at: int | None = None
    project_id: str | None = None
    object: str | None = None


@attrs.frozen
class CheckpointPermissionDeleted:
    """The answer to deleting a checkpoint permission."""

    id: str
    deleted: bool = True
    object: str | None = None
