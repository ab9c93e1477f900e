"""Records of webhook events: what ``finetune_async.webhooks.unwrap`` returns.

OpenAI's payloads are thin (docs/compat.md, "Webhooks as OpenAI sends them"):
``{"id": "evt_…", "object": "event", "type": …, "created_at": …, "data": {"id": …}}``. The
object itself has to be retrieved, so ``data`` keeps its ``id`` and the whole object as sent.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._enums import WebhookEventType

__all__ = ["WebhookEvent", "WebhookEventData"]


@attrs.frozen
class WebhookEventData:
    """The ``data`` of an event: the id of the job or batch it is about, and the object as sent.

    Attributes:
        id: The job's or batch's id (``ftjob-…``, ``batch_…``), or None when the event has none.
        raw: The whole ``data`` object, unknown keys included.
    """

    id: str | None
    raw: dict[str, Any]


@attrs.frozen
class WebhookEvent:
    """One verified webhook event (``event``).

    Attributes:
        id: The event's id (``evt_…``). It is not the ``webhook-id`` header.
        type: A ``WebhookEventType`` member, or the string sent for a type this SDK does not
            know (kept, never raised).
        created_at: When the event happened, in unix seconds.
        data: The object the event is about.
        webhook_id: The ``webhook-id`` header: the same on every retry of one delivery, so it is
            the key to deduplicate on.
        object: ``"event"``.
    """

    id: str
    type: WebhookEventType | str
    created_at: int
    data: WebhookEventData
    webhook_id: str
    object: str | None = None
