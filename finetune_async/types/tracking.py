"""Records of ``finetune_async.tracking``: what a ``Tracker`` yields and reports."""

from __future__ import annotations

from typing import Literal

import attrs

from .batches import Batch
from .fine_tuning import FineTuningJob

__all__ = ["TrackedKind", "TrackedObject", "TrackedUpdate"]

#: What a tracked object is: a fine-tuning job or a batch.
TrackedKind = Literal["job", "batch"]


@attrs.frozen
class TrackedUpdate:
    """One observed status change of a tracked job or batch.

    Attributes:
        kind: ``"job"`` or ``"batch"``.
        id: The job's or batch's id.
        status: The status observed.
        previous_status: The status observed before it, or None for the first observation.
        record: The ``FineTuningJob`` or ``Batch`` as it was read when the change was seen.
        update_id: Stable across redeliveries (after a restart, the same change has the same
            id), so a consumer can deduplicate on it.
        terminal: Whether ``status`` is final (the object is no longer polled).
    """

    kind: TrackedKind
    id: str
    status: str
    previous_status: str | None
    record: FineTuningJob | Batch
    update_id: str
    terminal: bool


@attrs.frozen
class TrackedObject:
    """What a tracker's store holds about one tracked object (``Tracker.status()``).

    Attributes:
        kind: ``"job"`` or ``"batch"``.
        id: The job's or batch's id.
        status: The last status observed, or None before the first observation.
        terminal: Whether that status is final.
        delivered: Whether every update of this object has been delivered.
        polls: How many times its state was read (by a retrieve, or seen in a list sweep).
        last_polled_at: When it was last read, in unix seconds, or None.
    """

    kind: TrackedKind
    id: str
    status: str | None
    terminal: bool
    delivered: bool
    polls: int
    last_polled_at: float | None
