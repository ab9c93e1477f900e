"""Pure tests of webhook signatures: sign, verify_signature, unwrap and client.webhooks.

No event loop and no server: every rule of docs/api.md's "Webhooks" and every bad input it lists,
each with its clear ``WebhookVerificationError``, whose message never holds the secret, the
signature or the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import multidict
import orjson
import pytest

from finetune_async.errors import FinetuneError, InvalidParameterError, WebhookVerificationError
from finetune_async.types import WebhookEvent, WebhookEventData, WebhookEventType
from finetune_async.webhooks import Webhooks, sign, unwrap, verify_signature

NOW = 1_764_000_000
KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()
BODY_MARKER = "body-marker-q7Zx"
EVENT: dict[str, Any] = {
    "id": "evt_685343a1381c819085d44c354e1b330e",
    "object": "event",
    "created_at": NOW - 5,
    "type": "fine_tuning.job.succeeded",
    "data": {"id": "ftjob-abc123", "note": BODY_MARKER},
}
BODY = orjson.dumps(EVENT)
WEBHOOK_ID = "wh_685342e6c53c8190a1be43f081506c52"


def headers_for(
    body: bytes = BODY, *, secret: Any = SECRET, webhook_id: str = WEBHOOK_ID, timestamp: int = NOW
) -> dict[str, str]:
    return sign(body, secret=secret, webhook_id=webhook_id, timestamp=timestamp)


def hand_signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The spec's rule written out: HMAC-SHA256 over ``id.timestamp.body``, base64."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verification_error(
    body: Any = BODY, headers: Any = None, *, secret: Any = SECRET, **kwargs: Any
) -> WebhookVerificationError:
    """The error unwrap raises, checked for what it must never hold or chain."""
    headers = headers_for() if headers is None else headers
    with pytest.raises(WebhookVerificationError) as caught:
        unwrap(body, headers, secret=secret, now=kwargs.pop("now", NOW), **kwargs)
    error = caught.value
    assert WebhookVerificationError is type(error)
    # No low-level exception (binascii, unicode, KeyError, cattrs) is chained to it.
    assert None is error.__cause__
    assert True is (error.__context__ is None or error.__suppress_context__)
    text = f"{error} {error!r} {error.args}"
    forbidden = [BODY_MARKER, BODY.decode("utf-8", "replace")]
    secrets = secret if isinstance(secret, list) else [secret]
    forbidden += [s for s in secrets if isinstance(s, str) and len(s) > len("whsec_")]
    forbidden += [s.removeprefix("whsec_") for s in forbidden if s.startswith("whsec_")]
    if isinstance(headers, dict):
        signature = headers.get("webhook-signature") or ""
        forbidden += [part for part in signature.replace(",", " ").split() if len(part) > 3]
    for secret_text in forbidden:
        assert secret_text not in text
    return error


# --- the rule itself ------------------------------------------------------------------------------


def test_sign_returns_exactly_the_three_headers() -> None:
    """sign() gives webhook-id, webhook-timestamp and one v1 entry computed by the spec's rule."""
    expected = {
        "webhook-id": WEBHOOK_ID,
        "webhook-timestamp": str(NOW),
        "webhook-signature": "v1," + hand_signature(KEY, WEBHOOK_ID, str(NOW), BODY),
    }
    assert expected == headers_for()


def test_sign_matches_the_published_test_vector() -> None:
    """The Standard Webhooks libraries' shared test vector signs to the published value."""
    headers = sign(
        b'{"test": 2432232314}',
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
    )
    assert "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" == headers["webhook-signature"]


def test_sign_with_several_secrets_gives_one_entry_each_in_order() -> None:
    """During a rotation the header holds a v1 entry per secret, space-separated."""
    headers = headers_for(secret=[SECRET, OTHER_SECRET])
    other_key = base64.b64decode(OTHER_SECRET.removeprefix("whsec_"))
    expected = " ".join(
        "v1," + hand_signature(key, WEBHOOK_ID, str(NOW), BODY) for key in (KEY, other_key)
    )
    assert expected == headers["webhook-signature"]


def test_unwrap_returns_the_typed_event() -> None:
    """A verified body becomes a WebhookEvent with the header's webhook_id and the data as sent."""
    expected = WebhookEvent(
        id=EVENT["id"],
        type=WebhookEventType.FINE_TUNING_JOB_SUCCEEDED,
        created_at=NOW - 5,
        data=WebhookEventData(id="ftjob-abc123", raw=EVENT["data"]),
        webhook_id=WEBHOOK_ID,
        object="event",
    )
    event = unwrap(BODY, headers_for(), secret=SECRET, now=NOW)
    assert expected == event
    assert WebhookEventType.FINE_TUNING_JOB_SUCCEEDED is event.type


@pytest.mark.parametrize("member", list(WebhookEventType))
def test_every_known_type_becomes_its_member(member: WebhookEventType) -> None:
    """The seven job and batch event types become WebhookEventType members."""
    body = orjson.dumps({**EVENT, "type": member.value})
    assert member is unwrap(body, headers_for(body), secret=SECRET, now=NOW).type


def test_unknown_type_is_kept_as_its_string() -> None:
    """An event type this SDK does not know is kept, not raised (the enum is open)."""
    body = orjson.dumps({**EVENT, "type": "response.completed", "data": {"id": "resp_1"}})
    event = unwrap(body, headers_for(body), secret=SECRET, now=NOW)
    assert "response.completed" == event.type
    assert False is isinstance(event.type, WebhookEventType)
    assert "resp_1" == event.data.id


def test_event_without_object_or_data_id_still_structures() -> None:
    """``object`` and ``data.id`` are optional: a thin event without them is still an event."""
    body = orjson.dumps({"id": "evt_1", "type": "batch.completed", "created_at": 1, "data": {}})
    event = unwrap(body, headers_for(body), secret=SECRET, now=NOW)
    assert (None, None, {}) == (event.object, event.data.id, event.data.raw)


def test_str_body_verifies_as_its_utf8_bytes() -> None:
    """A str body is the same delivery as its UTF-8 bytes (non-ASCII included)."""
    body = orjson.dumps({**EVENT, "data": {"id": "ftjob-é✓"}})
    headers = headers_for(body)
    assert unwrap(body.decode(), headers, secret=SECRET, now=NOW) == unwrap(
        body, headers, secret=SECRET, now=NOW
    )


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_bytes_like_bodies_verify(wrap: Any) -> None:
    """A bytearray or memoryview of the body (what some servers hand out) verifies as bytes."""
    assert EVENT["id"] == unwrap(wrap(BODY), headers_for(), secret=SECRET, now=NOW).id


def test_signature_covers_the_exact_bytes() -> None:
    """Re-serialized JSON (one space more) no longer verifies: the raw bytes are what is signed."""
    reformatted = orjson.dumps(EVENT).replace(b'":', b'": ', 1)
    error = verification_error(reformatted)
    assert "no_matching_signature" == error.reason


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda h: {k.title(): v for k, v in h.items()}, id="title-case-dict"),
        pytest.param(lambda h: {k.upper(): v for k, v in h.items()}, id="upper-case-dict"),
        pytest.param(multidict.CIMultiDict, id="CIMultiDict"),
        pytest.param(lambda h: {k.encode(): v.encode() for k, v in h.items()}, id="raw-bytes-dict"),
    ],
)
def test_header_names_are_matched_case_insensitively(headers: Any) -> None:
    """Any mapping works, whatever the case of its names (and raw bytes as ASGI gives them)."""
    assert WEBHOOK_ID == unwrap(BODY, headers(headers_for()), secret=SECRET, now=NOW).webhook_id


def test_any_entry_of_the_list_may_match() -> None:
    """Entries are space-separated; a v1a (asymmetric) entry and a stale v1 one are skipped."""
    good = headers_for()["webhook-signature"]
    stale = "v1," + hand_signature(b"k" * 32, WEBHOOK_ID, str(NOW), BODY)
    headers = {**headers_for(), "webhook-signature": f"v1a,c2lnbmF0dXJl {stale}  {good}"}
    verify_signature(BODY, headers, secret=SECRET, now=NOW)


@pytest.mark.parametrize("sent_with", [SECRET, OTHER_SECRET])
def test_any_of_several_secrets_may_match(sent_with: str) -> None:
    """During a rotation the receiver holds both secrets; a delivery signed with either passes."""
    headers = headers_for(secret=sent_with)
    verify_signature(BODY, headers, secret=[SECRET, OTHER_SECRET], now=NOW)
    verify_signature(BODY, headers, secret=(OTHER_SECRET, SECRET), now=NOW)


def test_unpadded_secret_is_accepted() -> None:
    """A secret whose base64 lacks its padding decodes to the same key."""
    unpadded = "whsec_" + base64.b64encode(b"twenty-two bytes key!!").decode().rstrip("=")
    assert not unpadded.endswith("=")
    headers = headers_for(secret=unpadded)
    verify_signature(BODY, headers, secret=unpadded, now=NOW)


@pytest.mark.parametrize(("tolerance", "offset"), [(300, 300), (300, -300), (10, 10), (0, 0)])
def test_timestamp_at_the_tolerance_passes(tolerance: int, offset: int) -> None:
    """A delivery exactly ``tolerance`` seconds old or early passes; the window is inclusive."""
    headers = headers_for(timestamp=NOW - offset)
    verify_signature(BODY, headers, secret=SECRET, tolerance=tolerance, now=NOW)


def test_default_now_is_the_wall_clock() -> None:
    """Without ``now`` the current time is used: a fresh signature passes, an old one fails."""
    import time

    fresh = headers_for(timestamp=int(time.time()))
    verify_signature(BODY, fresh, secret=SECRET)
    with pytest.raises(WebhookVerificationError, match="old"):
        verify_signature(BODY, headers_for(timestamp=int(time.time()) - 3600), secret=SECRET)


# --- every bad input, each with its clear error -------------------------------------------------


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header(name: str) -> None:
    """A missing header is named."""
    headers = {k: v for k, v in headers_for().items() if k != name}
    error = verification_error(headers=headers)
    assert ("missing_header", f"the {name} header is missing") == (error.reason, str(error))


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_empty_header(name: str) -> None:
    """An empty header counts as missing, and is named."""
    error = verification_error(headers={**headers_for(), name: ""})
    assert ("missing_header", f"the {name} header is empty") == (error.reason, str(error))


def test_header_that_is_not_text() -> None:
    """A header value that is neither str nor bytes is refused by name."""
    error = verification_error(headers={**headers_for(), "webhook-timestamp": NOW})
    assert ("malformed_header", "the webhook-timestamp header is a int, not text") == (
        error.reason,
        str(error),
    )


def test_webhook_id_with_a_dot() -> None:
    """A webhook-id holding '.', the separator of the signed fields, is refused (the spec warns)."""
    headers = {**headers_for(), "webhook-id": "wh_1.2"}
    error = verification_error(headers=headers)
    assert "malformed_header" == error.reason
    assert "'.'" in str(error)


@pytest.mark.parametrize(
    "timestamp",
    ["soon", "1764000000.5", "-1764000000", " 1764000000", "+1764000000", "1_764_000_000",
     "١٧٦٤٠٠٠٠٠٠", "9" * 40],
)  # fmt: skip
def test_malformed_timestamp(timestamp: str) -> None:
    """Anything but ASCII digits of unix seconds is a malformed timestamp (floats included)."""
    error = verification_error(headers={**headers_for(), "webhook-timestamp": timestamp})
    assert ("malformed_timestamp", "the webhook-timestamp header is not integer unix seconds") == (
        error.reason,
        str(error),
    )


@pytest.mark.parametrize(
    ("offset", "reason", "words"),
    [(301, "timestamp_too_old", "301 s old"), (-301, "timestamp_too_new", "301 s in the future")],
)
def test_timestamp_outside_the_tolerance(offset: int, reason: str, words: str) -> None:
    """One second past the tolerance, either way, is refused, and the message says how far."""
    error = verification_error(headers=headers_for(timestamp=NOW - offset))
    assert reason == error.reason
    assert words in str(error)
    assert "tolerance of 300 s" in str(error)


def test_tolerance_is_configurable() -> None:
    """A tolerance of 30 s refuses a delivery 31 s old that the default 300 s accepts."""
    headers = headers_for(timestamp=NOW - 31)
    verify_signature(BODY, headers, secret=SECRET, now=NOW)
    error = verification_error(headers=headers, tolerance=30)
    assert "timestamp_too_old" == error.reason


@pytest.mark.parametrize(
    ("signature", "words"),
    [
        pytest.param("{sig}", "entry 1 of the webhook-signature header is not 'version,signature'",
                     id="bare-signature"),
        pytest.param("v1,", "entry 1 of the webhook-signature header is not 'version,signature'",
                     id="empty-value"),
        pytest.param(",{sig}", "entry 1 of the webhook-signature header is not 'version,signature'",
                     id="empty-version"),
        pytest.param("v1,{sig} v1,not*base64!", "entry 2 of the webhook-signature header is not "
                     "base64", id="not-base64"),
        pytest.param("v1,{sig} v1,c2hvcnQ=", "entry 2 of the webhook-signature header is not an "
                     "HMAC-SHA256 (5 bytes, not 32)", id="short-digest"),
        pytest.param("v1,{unpadded}", "entry 1 of the webhook-signature header is not base64",
                     id="unpadded-signature"),
    ],
)  # fmt: skip
def test_malformed_signature(signature: str, words: str) -> None:
    """A malformed entry is refused by position, even beside a good one (openai-python accepts
    bare signatures; standardwebhooks reports a malformed entry as a mere mismatch)."""
    good = headers_for()["webhook-signature"].removeprefix("v1,")
    value = signature.format(sig=good, unpadded=good.rstrip("="))
    error = verification_error(headers={**headers_for(), "webhook-signature": value})
    assert ("malformed_signature", words) == (error.reason, str(error).split(" (bare")[0])


def test_header_without_any_v1_entry() -> None:
    """A header of only asymmetric (v1a) entries holds nothing this scheme can check."""
    error = verification_error(headers={**headers_for(), "webhook-signature": "v1a,c2lnbmF0dXJl"})
    expected = "the webhook-signature header holds no v1 (HMAC-SHA256) signature"
    assert ("no_matching_signature", expected) == (error.reason, str(error))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"webhook-id": "wh_other"}, id="other-id"),
        pytest.param({"webhook-timestamp": str(NOW - 1)}, id="other-timestamp"),
    ],
)
def test_signed_fields_are_covered(tamper: dict[str, str]) -> None:
    """Changing the id or the timestamp breaks the signature: both are signed."""
    error = verification_error(headers={**headers_for(), **tamper})
    expected = "no signature in the webhook-signature header matches the secret"
    assert ("no_matching_signature", expected) == (error.reason, str(error))


def test_wrong_secret() -> None:
    """A delivery signed with another secret has no matching signature."""
    error = verification_error(headers=headers_for(secret=OTHER_SECRET))
    assert "no_matching_signature" == error.reason


def test_tampered_body() -> None:
    """A body changed after signing has no matching signature."""
    error = verification_error(BODY.replace(b"succeeded", b"cancelled"))
    assert "no_matching_signature" == error.reason


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        pytest.param("raw-secret-without-prefix", "does not start with 'whsec_'", id="raw-string"),
        pytest.param(base64.b64encode(KEY).decode(), "does not start with 'whsec_'",
                     id="no-prefix"),
        pytest.param("whsec_", "the secret is empty after 'whsec_'", id="empty-key"),
        pytest.param("whsec_not*base64!", "the secret after 'whsec_' is not base64", id="not-b64"),
        pytest.param("whsec_AAAAA", "the secret after 'whsec_' is not base64", id="bad-length"),
        pytest.param("whsec_ñññ", "the secret after 'whsec_' is not base64", id="non-ascii"),
        pytest.param(SECRET + "\n", "the secret after 'whsec_' is not base64", id="newline"),
        pytest.param(KEY, "must be a str ('whsec_…') or a sequence of them, not bytes", id="bytes"),
        pytest.param(None, "must be a str ('whsec_…') or a sequence of them, not NoneType",
                     id="none"),
        pytest.param([], "no secret was given", id="empty-list"),
        pytest.param([SECRET, "whsec_bad*"], "secret 2 of 2: the secret after 'whsec_' is not "
                     "base64", id="second-of-two"),
        pytest.param([SECRET, 7], "secret 2 of 2 is a int, not a str", id="not-a-str"),
    ],
)  # fmt: skip
def test_malformed_secret(secret: Any, words: str) -> None:
    """A secret must be 'whsec_' + base64 (openai-python takes any other string as the raw key;
    standardwebhooks fails with a bare ValueError on bad base64)."""
    error = verification_error(secret=secret)
    assert "malformed_secret" == error.reason
    assert words in str(error)


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        pytest.param(b"not json " + BODY_MARKER.encode(), "not_json", "the body is not JSON",
                     id="not-json"),
        pytest.param(b"\xff\xfe" + BODY, "not_json", "the body is not JSON", id="not-utf8"),
        pytest.param(b"", "not_json", "the body is not JSON", id="empty"),
        pytest.param(b'["' + BODY_MARKER.encode() + b'"]', "not_an_event",
                     "the body is a JSON array, not an event object", id="array"),
        pytest.param(b'"' + BODY_MARKER.encode() + b'"', "not_an_event",
                     "the body is a JSON string, not an event object", id="string"),
        pytest.param(b"null", "not_an_event", "the body is a JSON null, not an event object",
                     id="null"),
        pytest.param(orjson.dumps({k: v for k, v in EVENT.items() if k != "type"}),
                     "not_an_event", "it has no 'type' field", id="no-type"),
        pytest.param(orjson.dumps({k: v for k, v in EVENT.items() if k != "data"}),
                     "not_an_event", "it has no 'data' field", id="no-data"),
        pytest.param(orjson.dumps({**EVENT, "created_at": BODY_MARKER}), "not_an_event",
                     "a field has the wrong type", id="created-at-text"),
        pytest.param(orjson.dumps({**EVENT, "data": [BODY_MARKER]}), "not_an_event",
                     "a field has the wrong type", id="data-array"),
        pytest.param(orjson.dumps({**EVENT, "data": None}), "not_an_event",
                     "a field has the wrong type", id="data-null"),
    ],
)  # fmt: skip
def test_body_that_is_not_an_event(body: bytes, reason: str, words: str) -> None:
    """A verified body that is not JSON, or not an event object, is refused by unwrap."""
    headers = headers_for(body)
    verify_signature(body, headers, secret=SECRET, now=NOW)
    error = verification_error(body, headers)
    assert reason == error.reason
    assert words in str(error)
    assert BODY_MARKER not in str(error)


def test_str_body_without_utf8_form() -> None:
    """A str holding lone surrogates has no bytes to verify: a clear error, not UnicodeError."""
    error = verification_error("{\udcff}")
    assert "malformed_body" == error.reason
    assert "pass the raw bytes" in str(error)


def test_error_is_a_finetune_error_and_a_value_error() -> None:
    """``except ValueError`` (openai-python's habit) and ``except FinetuneError`` both catch it."""
    error = verification_error(headers={})
    assert isinstance(error, FinetuneError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        pytest.param(lambda: verify_signature(7, headers_for(), secret=SECRET),  # type: ignore[arg-type]
                     "body must be the raw bytes (or a str), not int", id="int-body"),
        pytest.param(lambda: verify_signature(BODY, [("webhook-id", "x")], secret=SECRET),  # type: ignore[arg-type]
                     "headers must be a mapping, not list", id="list-headers"),
    ],
)  # fmt: skip
def test_wrong_argument_types_raise_type_error(call: Any, words: str) -> None:
    """A body or headers of the wrong type is the caller's bug: TypeError, named."""
    with pytest.raises(TypeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tolerance": -1}, "tolerance"),
        ({"tolerance": "300"}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"tolerance": True}, "tolerance"),
        ({"now": "now"}, "now"),
    ],
)
def test_bad_tolerance_or_now(kwargs: dict[str, Any], param: str) -> None:
    """A tolerance or now that is not a usable number is an InvalidParameterError naming it."""
    with pytest.raises(InvalidParameterError) as caught:
        verify_signature(BODY, headers_for(), secret=SECRET, **kwargs)
    assert param == caught.value.param


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"webhook_id": "wh.1"}, "webhook_id"),
        ({"webhook_id": "wh 1"}, "webhook_id"),
        ({"webhook_id": ""}, "webhook_id"),
        ({"webhook_id": "wh_é"}, "webhook_id"),
        ({"webhook_id": 7}, "webhook_id"),
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": "1764000000"}, "timestamp"),
        ({"secret": "raw"}, "secret"),
        ({"secret": []}, "secret"),
    ],
)
def test_sign_refuses_bad_input(kwargs: dict[str, Any], param: str) -> None:
    """sign() refuses what a receiver could not verify, naming the parameter; no secret shown."""
    arguments: dict[str, Any] = {"secret": SECRET, "webhook_id": WEBHOOK_ID, "timestamp": NOW}
    with pytest.raises(InvalidParameterError) as caught:
        sign(BODY, **{**arguments, **kwargs})
    assert param == caught.value.param
    assert SECRET not in str(caught.value)


def test_sign_refuses_a_str_body_without_utf8_form() -> None:
    """A str body holding lone surrogates cannot be sent: InvalidParameterError on ``body``."""
    with pytest.raises(InvalidParameterError) as caught:
        sign("\udcff", secret=SECRET, webhook_id=WEBHOOK_ID, timestamp=NOW)
    assert "body" == caught.value.param


# --- client.webhooks -----------------------------------------------------------------------------


@pytest.fixture
def no_env_secret(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
    return monkeypatch


def test_client_api_takes_the_call_secret_first(no_env_secret: pytest.MonkeyPatch) -> None:
    """The call's secret wins over the client's and the environment's."""
    no_env_secret.setenv("OPENAI_WEBHOOK_SECRET", OTHER_SECRET)
    webhooks = Webhooks(OTHER_SECRET)
    headers = headers_for(timestamp=_now())
    assert EVENT["id"] == webhooks.unwrap(BODY, headers, secret=SECRET).id
    webhooks.verify_signature(BODY, headers, secret=SECRET)


def test_client_api_falls_back_on_its_own_secret(no_env_secret: pytest.MonkeyPatch) -> None:
    """Without a call secret, the client's ``webhook_secret`` is used, before the environment."""
    no_env_secret.setenv("OPENAI_WEBHOOK_SECRET", OTHER_SECRET)
    headers = headers_for(timestamp=_now())
    assert EVENT["id"] == Webhooks(SECRET).unwrap(BODY, headers).id
    Webhooks([OTHER_SECRET, SECRET]).verify_signature(BODY, headers)


def test_client_api_falls_back_on_the_environment(no_env_secret: pytest.MonkeyPatch) -> None:
    """Without a call or client secret, OPENAI_WEBHOOK_SECRET is read at the call."""
    no_env_secret.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    headers = headers_for(timestamp=_now())
    assert EVENT["id"] == Webhooks().unwrap(BODY, headers).id


@pytest.mark.parametrize("env", [None, ""])
def test_client_api_without_any_secret(no_env_secret: pytest.MonkeyPatch, env: str | None) -> None:
    """No secret anywhere (an empty variable counts as unset) is a configuration error, not a
    WebhookVerificationError (a receiver answering 400 to those would hide it)."""
    if env is not None:
        no_env_secret.setenv("OPENAI_WEBHOOK_SECRET", env)
    for call in (Webhooks().unwrap, Webhooks().verify_signature):
        with pytest.raises(InvalidParameterError, match="OPENAI_WEBHOOK_SECRET") as caught:
            call(BODY, headers_for())
        assert False is isinstance(caught.value, WebhookVerificationError)


def test_client_api_passes_tolerance(no_env_secret: pytest.MonkeyPatch) -> None:
    """``tolerance`` reaches the check."""
    headers = headers_for(timestamp=_now() - 60)
    Webhooks(SECRET).verify_signature(BODY, headers)
    with pytest.raises(WebhookVerificationError, match="old"):
        Webhooks(SECRET).verify_signature(BODY, headers, tolerance=30)


def test_client_api_repr_hides_the_secret() -> None:
    """The secret never shows in the repr of ``client.webhooks``."""
    assert SECRET not in repr(Webhooks(SECRET))
    assert SECRET.removeprefix("whsec_") not in repr(Webhooks([SECRET]))


def _now() -> int:
    import time

    return int(time.time())
