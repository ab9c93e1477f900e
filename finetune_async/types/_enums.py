"""Open enums: the values the API documents, as ``StrEnum`` members.

A field typed ``SomeEnum | str`` becomes the member when the server sends a known value and stays
the plain string otherwise, so a new status or a provider's own spelling never raises
(docs/compat.md, "Parsing"). The converter does that with one hook factory (docs/architecture.md
rule 6).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BatchEndpoint",
    "BatchStatus",
    "CheckpointPermissionOrder",
    "FilePurpose",
    "FileStatus",
    "FineTuningJobEventLevel",
    "FineTuningJobEventType",
    "FineTuningJobStatus",
    "MethodType",
    "ReasoningEffort",
    "WebhookEventType",
]


class FineTuningJobStatus(StrEnum):
    """Statuses of a fine-tuning job documented by OpenAI (others arrive as plain strings)."""

    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not in the spec's enum, but the official pause example answers it (docs/compat.md).
    PAUSED = "paused"


class FineTuningJobEventLevel(StrEnum):
    """Log level of a fine-tuning event."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class FineTuningJobEventType(StrEnum):
    """Kind of a fine-tuning event."""

    MESSAGE = "message"
    METRICS = "metrics"


class MethodType(StrEnum):
    """Fine-tuning method."""

    SUPERVISED = "supervised"
    DPO = "dpo"
    REINFORCEMENT = "reinforcement"


class ReasoningEffort(StrEnum):
    """Reasoning effort of a reinforcement fine-tuning job."""

    DEFAULT = "default"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CheckpointPermissionOrder(StrEnum):
    """Sort order of the checkpoint permissions list (the spec's own spelling)."""

    ASCENDING = "ascending"
    DESCENDING = "descending"


class BatchStatus(StrEnum):
    """Statuses of a batch."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class BatchEndpoint(StrEnum):
    """The endpoints a batch may target (the spec's list)."""

    RESPONSES = "/v1/responses"
    CHAT_COMPLETIONS = "/v1/chat/completions"
    EMBEDDINGS = "/v1/embeddings"
    COMPLETIONS = "/v1/completions"
    MODERATIONS = "/v1/moderations"
    IMAGES_GENERATIONS = "/v1/images/generations"
    IMAGES_EDITS = "/v1/images/edits"
    VIDEOS = "/v1/videos"


class FilePurpose(StrEnum):
    """Purposes of a file: the ones an upload may name, and the ones the API assigns."""

    ASSISTANTS = "assistants"
    ASSISTANTS_OUTPUT = "assistants_output"
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"
    FINE_TUNE = "fine-tune"
    FINE_TUNE_RESULTS = "fine-tune-results"
    VISION = "vision"
    USER_DATA = "user_data"
    EVALS = "evals"


class FileStatus(StrEnum):
    """Processing status of a file (deprecated by the API, still sent)."""

    UPLOADED = "uploaded"
    PROCESSED = "processed"
    ERROR = "error"


class WebhookEventType(StrEnum):
    """Types of the webhook events OpenAI sends for jobs and batches (others stay strings)."""

    FINE_TUNING_JOB_SUCCEEDED = "fine_tuning.job.succeeded"
    FINE_TUNING_JOB_FAILED = "fine_tuning.job.failed"
    FINE_TUNING_JOB_CANCELLED = "fine_tuning.job.cancelled"
    BATCH_COMPLETED = "batch.completed"
    BATCH_FAILED = "batch.failed"
    BATCH_CANCELLED = "batch.cancelled"
    BATCH_EXPIRED = "batch.expired"
