"""Webhooks: verify, sign and receive OpenAI's pushes (the Standard Webhooks scheme).

``verify_signature``, ``unwrap`` and ``sign`` are pure functions (``_signature``);
``WebhookReceiver`` serves deliveries as an ``aiohttp.web`` sub-application or a plain ASGI 3
app (``_receiver``); ``Webhooks`` is what the clients expose as ``client.webhooks``
(``_client_api``). Importing this package loads neither aiohttp nor an event loop.
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
