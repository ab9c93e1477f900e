"""``client.webhooks`` on both clients: the secret from the call, the client, or the environment."""

from __future__ import annotations

import base64
import time

import orjson
import pytest

from finetune_async import AsyncClient, Client, InvalidParameterError, WebhookVerificationError
from finetune_async.webhooks import sign

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = orjson.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "fine_tuning.job.succeeded",
        "created_at": 1721764800,
        "data": {"id": "ftjob-1"},
    }
)


def signed(secret: str) -> dict[str, str]:
    return sign(BODY, secret=secret, webhook_id="wh_1", timestamp=int(time.time()))


def test_the_client_keyword_is_the_default_secret() -> None:
    """AsyncClient(webhook_secret=...) verifies with that secret; the event is typed."""
    client = AsyncClient(api_key="sk-test", webhook_secret=SECRET)
    event = client.webhooks.unwrap(BODY, signed(SECRET))
    assert ("evt_1", "ftjob-1", "wh_1") == (event.id, event.data.id, event.webhook_id)
    with pytest.raises(WebhookVerificationError):
        client.webhooks.verify_signature(BODY, signed(OTHER))


def test_the_call_secret_wins_over_the_client_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret given to the call is used first, then the client's, then the environment."""
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", OTHER)
    client = AsyncClient(api_key="sk-test", webhook_secret=SECRET)
    client.webhooks.verify_signature(BODY, signed(OTHER), secret=OTHER)
    client.webhooks.verify_signature(BODY, signed(SECRET))
    bare = AsyncClient(api_key="sk-test")
    bare.webhooks.verify_signature(BODY, signed(OTHER))


def test_no_secret_anywhere_is_a_clear_local_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a secret the call says where to put one (not a verification failure)."""
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
    with pytest.raises(InvalidParameterError, match="OPENAI_WEBHOOK_SECRET"):
        AsyncClient(api_key="sk-test").webhooks.unwrap(BODY, signed(SECRET))


def test_the_blocking_client_has_the_same_webhooks_and_hides_the_secret() -> None:
    """Client(webhook_secret=...) verifies the same way, with no thread started for it."""
    client = Client(api_key="sk-test", webhook_secret=[OTHER, SECRET])
    try:
        assert "evt_1" == client.webhooks.unwrap(BODY, signed(SECRET)).id
        assert not client._portal.is_running
        assert SECRET not in repr(client.webhooks)
        assert SECRET not in repr(client._async._settings)
    finally:
        client.close()
