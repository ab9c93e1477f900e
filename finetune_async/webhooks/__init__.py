"""Webhooks: verify, sign and receive OpenAI's pushes (the Standard Webhooks scheme).

``verify_signature``, ``unwrap`` and ``sign`` are pure functions (``_signature``);
``WebhookReceiver`` serves deliveries as an ``aiohttp.web`` sub-application or a plain ASGI 3
app (``_receiver``); ``Webhooks`` is what the clients expose as ``client.webhooks``
(``_client_api``). Importing this package loads neither aiohttp nor an event loop.

In a handler of your own, verify the raw body (never re-serialized JSON) and the headers::

    from finetune_async.webhooks import WebhookVerificationError, unwrap

    try:
        event = unwrap(raw_body, request.headers, secret=os.environ["OPENAI_WEBHOOK_SECRET"])
    except WebhookVerificationError as exc:
        return 400, str(exc)  # safe to send back: it never holds the secret or the body
    if event.type == WebhookEventType.FINE_TUNING_JOB_SUCCEEDED:
        job = await client.fine_tuning.jobs.retrieve(event.data.id)

Or let a receiver answer for you (200 once ``on_event`` returned, 500 if it raised, 400, 413,
405, deduplicated on ``webhook-id``)::

    receiver = WebhookReceiver(secret=secret, on_event=handle_event)
    app.add_subapp("/webhooks/", receiver.aiohttp_app())  # aiohttp.web
    fastapi_app.add_route("/webhooks", receiver.asgi_app, methods=["POST"])  # FastAPI

``sign`` makes the three headers, for tests and senders. Verification is stricter than
openai-python and ``standardwebhooks`` where those are lax or crash: see ``_signature``.
"""

from __future__ import annotations

from ..errors import WebhookVerificationError
from ..types import WebhookEvent, WebhookEventData, WebhookEventType
from ._client_api import Webhooks
from ._receiver import WebhookReceiver
from ._signature import sign, unwrap, verify_signature

__all__ = [
    "WebhookEvent",
    "WebhookEventData",
    "WebhookEventType",
    "WebhookReceiver",
    "WebhookVerificationError",
    "Webhooks",
    "sign",
    "unwrap",
    "verify_signature",
]
