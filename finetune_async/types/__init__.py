"""The records and open enums of finetune_async: attrs classes, no I/O."""

from __future__ import annotations

from ._enums import (
    CheckpointPermissionOrder,
    FineTuningJobEventLevel,
    FineTuningJobEventType,
    FineTuningJobStatus,
    MethodType,
    ReasoningEffort,
)
from ._page import Page
from .fine_tuning import (
    CheckpointMetrics,
    CheckpointPermission,
    CheckpointPermissionDeleted,
    DpoHyperparameters,
    DpoMethod,
    FineTuningIntegration,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    Hyperparameters,
    HyperparameterValue,
    JobError,
    Method,
    ReinforcementHyperparameters,
    ReinforcementMethod,
    SupervisedHyperparameters,
    SupervisedMethod,
    WandbIntegration,
)

__all__ = [
    "CheckpointMetrics",
    "CheckpointPermission",
    "CheckpointPermissionDeleted",
    "CheckpointPermissionOrder",
    "DpoHyperparameters",
    "DpoMethod",
    "FineTuningIntegration",
    "FineTuningJob",
    "FineTuningJobCheckpoint",
    "FineTuningJobEvent",
    "FineTuningJobEventLevel",
    "FineTuningJobEventType",
    "FineTuningJobStatus",
    "HyperparameterValue",
    "Hyperparameters",
    "JobError",
    "Method",
    "MethodType",
    "Page",
    "ReasoningEffort",
    "ReinforcementHyperparameters",
    "ReinforcementMethod",
    "SupervisedHyperparameters",
    "SupervisedMethod",
    "WandbIntegration",
]
