"""Working with the files around the API: training data, batch input and output, job metrics.

Pure helpers that read and write local files (streamed, with flat memory); nothing here talks
to the network. The resources use them (``files.create(validate=True)``,
``batches.results``, ``jobs.metrics``), and so does the emulator, so a file gets the same verdict
locally and on the server.
"""

from __future__ import annotations

from ..types import BatchRequest, BatchResult, StepMetrics
from ._batch_files import (
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    MAX_EMBEDDING_INPUTS,
    BatchInputSummary,
    BatchInputWriter,
    read_batch_results,
    write_batch_input,
)
from ._metrics import parse_step_metrics
from ._training import (
    MAX_EXAMPLE_TOKENS,
    MIN_EXAMPLES,
    TRAINING_METHODS,
    Problem,
    Severity,
    TrainingFileError,
    TrainingFileReport,
    TrainingFileSummary,
    validate_training_file,
)

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "MAX_EMBEDDING_INPUTS",
    "MAX_EXAMPLE_TOKENS",
    "MIN_EXAMPLES",
    "TRAINING_METHODS",
    "BatchInputSummary",
    "BatchInputWriter",
    "BatchRequest",
    "BatchResult",
    "Problem",
    "Severity",
    "StepMetrics",
    "TrainingFileError",
    "TrainingFileReport",
    "TrainingFileSummary",
    "parse_step_metrics",
    "read_batch_results",
    "validate_training_file",
    "write_batch_input",
]
