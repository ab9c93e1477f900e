"""Tracking that survives restarts: ``Tracker`` and its stores (docs/api.md, "Tracking …").

``Tracker`` follows jobs and batches until each is terminal and yields one ``TrackedUpdate`` per
status change, at least once, from a store that outlives the process: ``SQLiteStore`` (one
file, the default when ``store`` is a path) or ``MemoryStore`` (tests). ``Store`` is the small
protocol a store implements; ``StoreError`` is raised for a store that cannot be used, before
any request is sent. With a ``webhook_secret``, ``Tracker.serve_webhooks`` serves its webhook
receiver (a ``WebhookServer``), and polling only reconciles what the webhooks missed.
"""

from __future__ import annotations

from ..types.tracking import TrackedObject, TrackedUpdate
from ._memory import MemoryStore
from ._serve import WebhookServer
from ._sqlite import SQLiteStore
from ._store import Store, StoredObject, StoredUpdate, StoreError
from ._tracker import Tracker, TrackerStats

__all__ = [
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredObject",
    "StoredUpdate",
    "TrackedObject",
    "TrackedUpdate",
    "Tracker",
    "TrackerStats",
    "WebhookServer",
]
