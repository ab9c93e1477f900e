"""The rows of a fine-tuning job's result file (``step_metrics.csv``)."""

from __future__ import annotations

import attrs

__all__ = ["StepMetrics"]


@attrs.frozen
class StepMetrics:
    """One training step's metrics, as the job's result file reports them.

    A column the file does not have, or an empty cell (a step without validation), is None.
    OpenAI's files name the training accuracy ``train_accuracy`` (older jobs) or
    ``train_mean_token_accuracy``; both are kept as sent.

    Attributes:
        step: The training step, counting from 1.
        train_loss: Loss on the training batch of this step.
        train_accuracy: Token accuracy on the training batch (older result files).
        train_mean_token_accuracy: Token accuracy on the training batch (newer result files).
        valid_loss: Loss on a validation batch, at steps that ran one.
        valid_mean_token_accuracy: Token accuracy on that validation batch.
        full_valid_loss: Loss on the whole validation file (usually at the end of an epoch).
        full_valid_mean_token_accuracy: Token accuracy on the whole validation file.
        extra: Non-empty cells of columns this record does not know, by column name, as text.
    """

    step: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None
    extra: dict[str, str] = attrs.field(factory=dict)
