"""finetune_async: an async-first SDK for the OpenAI-compatible fine-tuning API.

``AsyncClient`` is the asyncio client and ``Client`` its blocking twin; records live in
``finetune_async.types`` and exceptions in ``finetune_async.errors`` (re-exported here).
"""

from __future__ import annotations

from . import types
from ._client import AsyncClient, ClientOptions
from ._config import Backoff, Timeout
from ._pagination import AsyncPager, Pager
from ._polling import JobWatch, is_terminal
from ._sync import Client
from ._version import __version__
from .data import TrainingFileError
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FinetuneError,
    InternalServerError,
    InvalidParameterError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from .types import JobUpdate, WebhookEvent, WebhookEventData, WebhookEventType
from .webhooks import WebhookReceiver

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncPager",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "Client",
    "ClientOptions",
    "ConflictError",
    "FinetuneError",
    "InternalServerError",
    "InvalidParameterError",
    "JobUpdate",
    "JobWatch",
    "NotFoundError",
    "Pager",
    "PermissionDeniedError",
    "RateLimitError",
    "Timeout",
    "TrainingFileError",
    "UnprocessableEntityError",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookEventData",
    "WebhookEventType",
    "WebhookReceiver",
    "WebhookVerificationError",
    "__version__",
    "is_terminal",
    "types",
]
