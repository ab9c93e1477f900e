"""One module per API area; each talks to the client only through ``Requester``."""

from __future__ import annotations

from .fine_tuning import (
    AsyncCheckpointPermissions,
    AsyncCheckpoints,
    AsyncFineTuning,
    AsyncJobCheckpoints,
    AsyncJobs,
)

__all__ = [
    "AsyncCheckpointPermissions",
    "AsyncCheckpoints",
    "AsyncFineTuning",
    "AsyncJobCheckpoints",
    "AsyncJobs",
]
