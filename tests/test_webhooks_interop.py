"""Webhook interop with two peers nobody here wrote: ``standardwebhooks`` and openai-python.

Signatures made by ``standardwebhooks`` verify with ours, and ours verify with
``standardwebhooks`` and with openai-python's ``client.webhooks.unwrap`` / ``verify_signature``
(openai-python verifies only: it has no signer). The last tests pin down where the peers are lax
or crash and we are strict, as the docs say.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
import standardwebhooks

from finetune_async.types import WebhookEventType
from finetune_async.webhooks import WebhookVerificationError, sign, unwrap, verify_signature

try:
    import openai
except ImportError:  # pragma: no cover - openai is in the tests group
    openai = None  # type: ignore[assignment]

needs_openai = pytest.mark.skipif(openai is None, reason="openai is not installed")

SECRET = "whsec_" + base64.b64encode(b"interop key, thirty-two bytes!!!").decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"the rotated-in key, 32 bytes...!").decode()
# A Standard Webhooks secret as such services print it: unpadded base64 of 24 bytes.
SVIX_STYLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def event_body(event_type: str = "fine_tuning.job.failed", *, pad: int = 0) -> bytes:
    return orjson.dumps(
        {
            "id": "evt_abc",
            "object": "event",
            "created_at": int(time.time()),
            "type": event_type,
            "data": {"id": "ftjob-abc", "pad": "é" * pad},
        }
    )


def peer_headers(secret: str, body: bytes, webhook_id: str = "wh_peer") -> dict[str, str]:
    """Headers signed by ``standardwebhooks`` itself."""
    now = dt.datetime.now(tz=dt.UTC)
    signature = standardwebhooks.Webhook(secret).sign(webhook_id, now, body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def our_headers(secret: Any, body: bytes, webhook_id: str = "wh_ours") -> dict[str, str]:
    return sign(body, secret=secret, webhook_id=webhook_id, timestamp=int(time.time()))


def openai_client(secret: str | None = None) -> Any:
    return openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", webhook_secret=secret)


# --- standardwebhooks -> ours -------------------------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, SVIX_STYLE_SECRET])
@pytest.mark.parametrize("pad", [0, 700])
def test_standardwebhooks_signatures_verify_with_ours(secret: str, pad: int) -> None:
    """A delivery signed by standardwebhooks verifies and unwraps with ours (non-ASCII body)."""
    body = event_body(pad=pad)
    headers = peer_headers(secret, body)
    verify_signature(body, headers, secret=secret)
    event = unwrap(body, headers, secret=secret)
    assert (WebhookEventType.FINE_TUNING_JOB_FAILED, "ftjob-abc", "wh_peer") == (
        event.type,
        event.data.id,
        event.webhook_id,
    )


def test_standardwebhooks_signature_fails_with_another_secret_of_ours() -> None:
    """Interop is not leniency: their signature with another key is refused by ours."""
    body = event_body()
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(body, peer_headers(SECRET, body), secret=NEW_SECRET)
    assert "no_matching_signature" == caught.value.reason


# --- ours -> standardwebhooks, openai-python ----------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, SVIX_STYLE_SECRET])
def test_our_signatures_verify_with_standardwebhooks(secret: str) -> None:
    """standardwebhooks' own verify accepts our headers and parses the same JSON."""
    body = event_body(pad=300)
    assert orjson.loads(body) == standardwebhooks.Webhook(secret).verify(
        body, our_headers(secret, body)
    )


@pytest.mark.parametrize("peer_secret", [SECRET, NEW_SECRET])
def test_our_rotation_signatures_verify_with_standardwebhooks_under_either_secret(
    peer_secret: str,
) -> None:
    """Signed with both secrets of a rotation, a delivery verifies with either, over there."""
    body = event_body()
    headers = our_headers([SECRET, NEW_SECRET], body)
    assert 2 == len(headers["webhook-signature"].split())
    standardwebhooks.Webhook(peer_secret).verify(body, headers, json_parse=False)


@needs_openai
@pytest.mark.parametrize("secret", [SECRET, SVIX_STYLE_SECRET])
def test_our_signatures_verify_with_openai_python(secret: str) -> None:
    """openai-python's client.webhooks.verify_signature and unwrap accept our headers."""
    body = event_body("batch.expired")
    headers = our_headers(secret, body)
    client = openai_client(secret)
    client.webhooks.verify_signature(body, headers)
    event = client.webhooks.unwrap(body, headers)
    assert ("batch.expired", "ftjob-abc", "evt_abc") == (event.type, event.data.id, event.id)
    # The secret given per call works the same, on a client without one.
    openai_client().webhooks.verify_signature(body, headers, secret=secret)


@needs_openai
def test_our_rotation_signatures_verify_with_openai_python() -> None:
    """openai-python accepts any matching entry: each secret of our rotation verifies there."""
    body = event_body()
    headers = our_headers([SECRET, NEW_SECRET], body)
    for secret in (SECRET, NEW_SECRET):
        openai_client(secret).webhooks.verify_signature(body, headers)


@needs_openai
@pytest.mark.asyncio
async def test_our_signatures_verify_with_the_async_openai_client() -> None:
    """AsyncOpenAI's (plain, not awaited) unwrap accepts our headers too."""
    body = event_body("fine_tuning.job.cancelled")
    headers = our_headers(SECRET, body)
    async with openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://127.0.0.1:9/v1", webhook_secret=SECRET
    ) as client:
        assert "fine_tuning.job.cancelled" == client.webhooks.unwrap(body, headers).type


@needs_openai
def test_both_peers_refuse_what_ours_refuses_for_a_tampered_body() -> None:
    """A body changed after our signing is refused by all three."""
    body = event_body()
    headers = our_headers(SECRET, body)
    tampered = body.replace(b"failed", b"succeeded")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(tampered, headers)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        openai_client(SECRET).webhooks.verify_signature(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        verify_signature(tampered, headers, secret=SECRET)


# --- where the peers are lax or crash, and we are strict ---------------------------------------


@needs_openai
def test_bare_signature_passes_openai_python_and_is_refused_by_ours() -> None:
    """openai-python accepts a signature without its ``v1,``; ours names the malformed entry."""
    body = event_body()
    headers = our_headers(SECRET, body)
    bare = {**headers, "webhook-signature": headers["webhook-signature"].removeprefix("v1,")}
    openai_client(SECRET).webhooks.verify_signature(body, bare)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(body, bare, secret=SECRET)
    assert "malformed_signature" == caught.value.reason
    assert "entry 1 of the webhook-signature header is not 'version,signature'" in str(caught.value)


@needs_openai
def test_raw_string_secret_passes_openai_python_and_is_refused_by_ours() -> None:
    """openai-python keys the HMAC with any string lacking ``whsec_``; ours refuses the secret."""
    body = event_body()
    raw = "my-raw-webhook-secret"
    stamp = str(int(time.time()))
    digest = hmac.new(raw.encode(), f"wh_raw.{stamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": "wh_raw",
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    openai_client(raw).webhooks.verify_signature(body, headers)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(body, headers, secret=raw)
    assert "malformed_secret" == caught.value.reason
    assert raw not in str(caught.value)


@pytest.mark.parametrize("secret", ["whsec_a", "whsec_not*base64!"])
def test_malformed_secret_crashes_standardwebhooks_and_is_clear_with_ours(secret: str) -> None:
    """standardwebhooks fails with a bare binascii.Error; ours says the secret is not base64."""
    with pytest.raises(binascii.Error):
        standardwebhooks.Webhook(secret)
    body = event_body()
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(body, our_headers(SECRET, body), secret=secret)
    assert "the secret after 'whsec_' is not base64" == str(caught.value)


def test_malformed_entry_is_a_mere_mismatch_for_standardwebhooks_and_named_by_ours() -> None:
    """standardwebhooks reports a malformed entry as "No matching signature"; ours names it."""
    body = event_body()
    headers = {**our_headers(SECRET, body), "webhook-signature": "v1,***"}
    with pytest.raises((standardwebhooks.WebhookVerificationError, ValueError)):
        standardwebhooks.Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(body, headers, secret=SECRET)
    assert "entry 1 of the webhook-signature header is not base64" == str(caught.value)


def test_float_timestamp_passes_standardwebhooks_and_is_refused_by_ours() -> None:
    """standardwebhooks reads ``webhook-timestamp`` as a float; the spec says integer seconds."""
    body = event_body()
    stamp = f"{int(time.time())}.0"
    webhook = standardwebhooks.Webhook(SECRET)
    signature = webhook.sign("wh_f", dt.datetime.fromtimestamp(float(stamp), tz=dt.UTC), body)
    headers = {"webhook-id": "wh_f", "webhook-timestamp": stamp, "webhook-signature": signature}
    # Theirs re-renders the timestamp as an integer to check it, so the float passes there.
    webhook.verify(body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError) as caught:
        verify_signature(body, headers, secret=SECRET)
    assert "malformed_timestamp" == caught.value.reason
