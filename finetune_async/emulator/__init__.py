"""A local OpenAI-compatible fine-tuning server, shipped for users' tests and demos.

``Emulator`` serves files, fine-tuning jobs with a realistic life cycle (validating_files,
queued, running with metrics events and checkpoints, succeeded or failed; cancel, pause and
resume), checkpoint permissions, batches that really process their input file, and models, with
cursor pagination and OpenAI's error shapes. ``Faults`` injects 429s with ``Retry-After``, 5xx,
latency, dropped connections and a rate limit; ``Limits`` bounds uploads, JSON bodies and the
request log; ``emu.stats`` counts what the server saw. ``WebhookEndpoint`` (or
``emu.add_webhook``) makes the emulator POST signed webhooks when jobs and batches end.
"""

from __future__ import annotations

from ._faults import Faults, RequestLog, RequestRecord, Stats, WebhookStats
from ._jobs import Timing
from ._limits import Limits
from ._server import Emulator
from ._state import BASE_MODELS
from ._webhooks import WebhookEndpoint

__all__ = [
    "BASE_MODELS",
    "Emulator",
    "Faults",
    "Limits",
    "RequestLog",
    "RequestRecord",
    "Stats",
    "Timing",
    "WebhookEndpoint",
    "WebhookStats",
]
