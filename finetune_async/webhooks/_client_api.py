"""``client.webhooks``: openai-python's ``unwrap`` and ``verify_signature``, on both clients.

Verifying needs no I/O, so one plain class serves ``AsyncClient`` and ``Client`` alike (docs/api.md,
"Webhooks"). The secret comes from the call, else from the client's ``webhook_secret=``, else
from the ``OPENAI_WEBHOOK_SECRET`` environment variable, read at the call, so a secret rotated
into the environment is picked up without a new client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..errors import InvalidParameterError
from . import _signature

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..types import WebhookEvent

__all__ = ["ENV_SECRET", "Webhooks"]

ENV_SECRET = "OPENAI_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret


@attrs.frozen
class Webhooks:
    """Webhook verification with the client's secret: ``client.webhooks``.

    Attributes:
        secret: The client's ``webhook_secret=`` (one ``whsec_…`` or several), or None to fall
            back on ``OPENAI_WEBHOOK_SECRET``. Never shown in the repr.
    """

    secret: str | Sequence[str] | None = attrs.field(default=None, repr=False)

    def unwrap(
        self,
        body: bytes | str,
        headers: Mapping[str, str],
        *,
        secret: str | Sequence[str] | None = None,
        tolerance: float = 300,
    ) -> WebhookEvent:
        """Verify a delivery, then return its event (``finetune_async.webhooks.unwrap``).

        Raises:
            WebhookVerificationError: The delivery failed verification or is not an event.
            InvalidParameterError: No secret in the call, on the client or in the environment.
        """
        return _signature.unwrap(body, headers, secret=self._secret(secret), tolerance=tolerance)

    def verify_signature(
        self,
        body: bytes | str,
        headers: Mapping[str, str],
        *,
        secret: str | Sequence[str] | None = None,
        tolerance: float = 300,
    ) -> None:
        """Check a delivery's signature and time (``finetune_async.webhooks.verify_signature``).

        Raises:
            WebhookVerificationError: The delivery failed verification.
            InvalidParameterError: No secret in the call, on the client or in the environment.
        """
        _signature.verify_signature(body, headers, secret=self._secret(secret), tolerance=tolerance)

    def _secret(self, given: str | Sequence[str] | None) -> str | Sequence[str]:
        for candidate in (given, self.secret, os.environ.get(ENV_SECRET)):
            # An empty value (OPENAI_WEBHOOK_SECRET= in a .env file) counts as unset.
            if candidate is not None and candidate != "":
                return candidate
        # A configuration error, not a bad delivery: a receiver that answers 400 to
        # WebhookVerificationError must not hide it, so this is not one.
        raise InvalidParameterError(
            "no webhook secret: pass secret=..., create the client with webhook_secret=..., "
            f"or set the {ENV_SECRET} environment variable",
            param="secret",
        )
