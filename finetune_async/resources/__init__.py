"""One module per API area; each talks to the client only through ``Requester``."""

from __future__ import annotations

from .batches import AsyncBatches
from .files import AsyncFiles
from .fine_tuning import (
    AsyncCheckpointPermissions,
    AsyncCheckpoints,
    AsyncFineTuning,
    AsyncJobCheckpoints,
    AsyncJobs,
)
from .models import AsyncModels

__all__ = [
    "AsyncBatches",
    "AsyncCheckpointPermissions",
    "AsyncCheckpoints",
    "AsyncFiles",
    "AsyncFineTuning",
    "AsyncJobCheckpoints",
    "AsyncJobs",
    "AsyncModels",
]
