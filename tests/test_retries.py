"""The retry loop against mocked answers (aioresponses): hints, limits, duplicates and shapes."""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any

import pytest

from finetune_async import (
    APIResponseValidationError,
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    Backoff,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from tests.conftest import API_KEY, BASE_URL, NO_BACKOFF, MockAPI

if TYPE_CHECKING:
    from finetune_async.types import FineTuningJob

JOB_ID = "ftjob-abc123"
JOB_URL = f"{BASE_URL}/fine_tuning/jobs/{JOB_ID}"
CREATE_URL = f"{BASE_URL}/fine_tuning/jobs"
JOB: dict[str, Any] = {
    "object": "fine_tuning.job",
    "id": JOB_ID,
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1721764800,
    "status": "queued",
    "training_file": "file-train",
}


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def _header(call: tuple[str, str, dict[str, Any]], name: str) -> str | None:
    headers = call[2].get("headers") or {}
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


async def _create(client: AsyncClient) -> FineTuningJob:
    return await client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file="file-train"
    )


# --- server hints --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_with_retry_after_ms_is_retried_once(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A GET answered 429 with retry-after-ms and then 200 returns the job after one retry."""
    mock_api.get(JOB_URL, status=429, payload=_error("slow down"), headers={"retry-after-ms": "10"})
    mock_api.get(JOB_URL, status=200, payload=JOB)

    job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_429_with_retry_after_zero_seconds_is_retried(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A 429 with ``Retry-After: 0`` (seconds) is retried at once and the job returned."""
    mock_api.get(JOB_URL, status=429, payload=_error("slow down"), headers={"Retry-After": "0"})
    mock_api.get(JOB_URL, status=200, payload=JOB)

    job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_429_with_retry_after_http_date_in_the_past_is_retried(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A 429 whose ``Retry-After`` is an HTTP date already past is retried at once."""
    past = email.utils.formatdate(time.time() - 120, usegmt=True)
    mock_api.get(JOB_URL, status=429, payload=_error("slow down"), headers={"Retry-After": past})
    mock_api.get(JOB_URL, status=200, payload=JOB)

    job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_x_should_retry_true_makes_a_400_retried(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """``x-should-retry: true`` on a 400 overrides the status rules: the GET is retried."""
    mock_api.get(
        JOB_URL, status=400, payload=_error("try again"), headers={"x-should-retry": "true"}
    )
    mock_api.get(JOB_URL, status=200, payload=JOB)

    job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_x_should_retry_false_stops_a_503(mock_api: MockAPI, client: AsyncClient) -> None:
    """``x-should-retry: false`` on a 503 means one attempt and the error raised."""
    mock_api.get(
        JOB_URL,
        status=503,
        payload=_error("unavailable"),
        headers={"x-should-retry": "false"},
        repeat=True,
    )

    with pytest.raises(InternalServerError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert 503 == caught.value.status_code
    assert 1 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_retry_after_beyond_max_retry_after_is_not_retried(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A Retry-After over ``Backoff.max_retry_after`` (60 s) raises RateLimitError at once."""
    mock_api.get(JOB_URL, status=429, payload=_error("slow down"), headers={"Retry-After": "3600"})
    mock_api.get(JOB_URL, status=200, payload=JOB)

    with pytest.raises(RateLimitError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert 429 == caught.value.status_code
    assert 1 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_retry_after_ms_beyond_a_custom_max_retry_after_is_not_retried(
    mock_api: MockAPI,
) -> None:
    """With ``max_retry_after=1`` a ``retry-after-ms: 5000`` hint ends the retries at once."""
    mock_api.get(
        JOB_URL, status=429, payload=_error("slow down"), headers={"retry-after-ms": "5000"}
    )
    mock_api.get(JOB_URL, status=200, payload=JOB)
    backoff = Backoff(initial=0, maximum=0, jitter=0, max_retry_after=1)

    async with AsyncClient(api_key=API_KEY, base_url=BASE_URL, backoff=backoff) as client:
        with pytest.raises(RateLimitError):
            await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert 1 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_retry_after_ms_is_waited_for(mock_api: MockAPI, client: AsyncClient) -> None:
    """With ``retry-after-ms: 200`` the second attempt is not sent before ~0.2 s have passed."""
    mock_api.get(
        JOB_URL, status=429, payload=_error("slow down"), headers={"retry-after-ms": "200"}
    )
    mock_api.get(JOB_URL, status=200, payload=JOB)

    started = time.monotonic()
    job = await client.fine_tuning.jobs.retrieve(JOB_ID)
    elapsed = time.monotonic() - started

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))
    assert elapsed >= 0.19


# --- server errors on GET ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_get_5xx_then_200_is_retried(
    mock_api: MockAPI, client: AsyncClient, status: int
) -> None:
    """A GET answered 500/502/503/504 and then 200 returns the job."""
    mock_api.get(JOB_URL, status=status, payload=_error("boom"))
    mock_api.get(JOB_URL, status=200, payload=JOB)

    job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_get_408_then_200_is_retried(mock_api: MockAPI, client: AsyncClient) -> None:
    """A GET answered 408 (request timeout) and then 200 returns the job."""
    mock_api.get(JOB_URL, status=408, payload=_error("timeout"))
    mock_api.get(JOB_URL, status=200, payload=JOB)

    job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 2 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_get_5xx_exhausts_default_retries(mock_api: MockAPI, client: AsyncClient) -> None:
    """After 2 retries (3 attempts) InternalServerError has the status, message and request id."""
    mock_api.get(
        JOB_URL,
        status=502,
        payload=_error("upstream went away"),
        headers={"x-request-id": "req_123"},
        repeat=True,
    )

    with pytest.raises(InternalServerError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    error = caught.value
    assert 3 == len(mock_api.calls("GET"))
    assert 502 == error.status_code
    assert "upstream went away" == error.message
    assert "req_123" == error.request_id
    assert "502" in str(error)
    assert "upstream went away" in str(error)
    assert error.outcome_unknown is False


@pytest.mark.asyncio
async def test_max_retries_zero_means_one_attempt(mock_api: MockAPI) -> None:
    """``max_retries=0`` sends a failing GET exactly once."""
    mock_api.get(JOB_URL, status=500, payload=_error("boom"), repeat=True)

    async with AsyncClient(
        api_key=API_KEY, base_url=BASE_URL, backoff=NO_BACKOFF, max_retries=0
    ) as client:
        with pytest.raises(InternalServerError):
            await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert 1 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_with_options_max_retries_counts_attempts(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """``with_options(max_retries=4)`` makes five attempts of a GET that keeps failing."""
    mock_api.get(JOB_URL, status=503, payload=_error("busy"), repeat=True)

    with pytest.raises(InternalServerError):
        await client.with_options(max_retries=4).fine_tuning.jobs.retrieve(JOB_ID)

    assert 5 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_backoff_setting_of_zero_retries_without_hint(mock_api: MockAPI) -> None:
    """``Backoff(initial=0, maximum=0, jitter=0)`` retries 5xx answers without a hint at once."""
    mock_api.get(JOB_URL, status=500, payload=_error("boom"))
    mock_api.get(JOB_URL, status=503, payload=_error("busy"))
    mock_api.get(JOB_URL, status=200, payload=JOB)
    backoff = Backoff(initial=0, maximum=0, jitter=0)

    async with AsyncClient(api_key=API_KEY, base_url=BASE_URL, backoff=backoff) as client:
        job = await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert JOB_ID == job.id
    assert 3 == len(mock_api.calls("GET"))


# --- unsafe POSTs --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_answered_500_is_sent_once_with_outcome_unknown(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A create answered 500 is not re-sent; the error says its outcome is unknown."""
    mock_api.post(CREATE_URL, status=500, payload=_error("boom"), repeat=True)

    with pytest.raises(InternalServerError) as caught:
        await _create(client)

    assert 1 == len(mock_api.calls("POST"))
    assert 500 == caught.value.status_code
    assert caught.value.outcome_unknown is True
    assert "outcome is unknown" in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["cancel", "pause", "resume"])
async def test_job_action_answered_500_is_sent_once_with_outcome_unknown(
    mock_api: MockAPI, client: AsyncClient, action: str
) -> None:
    """A cancel / pause / resume answered 500 is not re-sent; its outcome is unknown."""
    mock_api.post(f"{JOB_URL}/{action}", status=500, payload=_error("boom"), repeat=True)

    with pytest.raises(InternalServerError) as caught:
        await getattr(client.fine_tuning.jobs, action)(JOB_ID)

    assert 1 == len(mock_api.calls("POST"))
    assert caught.value.outcome_unknown is True
    assert "outcome is unknown" in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [502, 503, 504, 408])
async def test_create_answered_other_unknown_outcome_statuses_is_sent_once(
    mock_api: MockAPI, client: AsyncClient, status: int
) -> None:
    """A create answered 502/503/504/408 is sent once and flagged outcome unknown."""
    mock_api.post(CREATE_URL, status=status, payload=_error("hm"), repeat=True)

    with pytest.raises(APIStatusError) as caught:
        await _create(client)

    assert 1 == len(mock_api.calls("POST"))
    assert status == caught.value.status_code
    assert caught.value.outcome_unknown is True


@pytest.mark.asyncio
async def test_create_portkey_gateway_exception_is_not_retried(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A create answered 500 + ``x-portkey-gateway-exception: true``: sent once, outcome unknown."""
    mock_api.post(
        CREATE_URL,
        status=500,
        payload={"status": "failure", "message": "Something went wrong"},
        headers={"x-portkey-gateway-exception": "true"},
        repeat=True,
    )

    with pytest.raises(InternalServerError) as caught:
        await _create(client)

    assert 1 == len(mock_api.calls("POST"))
    assert caught.value.outcome_unknown is True
    assert "Something went wrong" in str(caught.value)
    assert "outcome is unknown" in str(caught.value)


@pytest.mark.asyncio
async def test_create_429_then_200_is_retried_with_the_same_idempotency_key(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A create answered 429 is retried and both attempts carry the same Idempotency-Key."""
    mock_api.post(CREATE_URL, status=429, payload=_error("slow down"))
    mock_api.post(CREATE_URL, status=200, payload=JOB)

    job = await _create(client)

    calls = mock_api.calls("POST")
    keys = [_header(call, "Idempotency-Key") for call in calls]
    assert JOB_ID == job.id
    assert 2 == len(calls)
    assert keys[0] is not None
    assert keys[0] == keys[1]


@pytest.mark.asyncio
async def test_two_creates_get_different_idempotency_keys(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """Two separate create calls send two different Idempotency-Keys."""
    mock_api.post(CREATE_URL, status=200, payload=JOB, repeat=True)

    await _create(client)
    await _create(client)

    keys = [_header(call, "Idempotency-Key") for call in mock_api.calls("POST")]
    assert 2 == len(keys)
    assert None not in keys
    assert keys[0] != keys[1]


@pytest.mark.asyncio
async def test_create_429_exhausted_is_not_outcome_unknown(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A create refused 429 on every attempt raises RateLimitError that is not outcome unknown."""
    mock_api.post(CREATE_URL, status=429, payload=_error("slow down"), repeat=True)

    with pytest.raises(RateLimitError) as caught:
        await _create(client)

    assert 3 == len(mock_api.calls("POST"))
    assert caught.value.outcome_unknown is False


# --- 4xx -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
async def test_4xx_is_never_retried_and_maps_to_its_class(
    mock_api: MockAPI, client: AsyncClient, status: int, error_class: type[APIStatusError]
) -> None:
    """A GET answered 400/401/403/404/422 is sent once and raises its own error class."""
    mock_api.get(JOB_URL, status=status, payload=_error(f"nope {status}"), repeat=True)

    with pytest.raises(APIStatusError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert error_class is type(caught.value)
    assert status == caught.value.status_code
    assert f"nope {status}" == caught.value.message
    assert 1 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_create_4xx_is_not_retried_and_outcome_known(
    mock_api: MockAPI, client: AsyncClient, status: int
) -> None:
    """A create answered 4xx (not 408/409/429) is sent once and its outcome is known."""
    mock_api.post(CREATE_URL, status=status, payload=_error("rejected"), repeat=True)

    with pytest.raises(APIStatusError) as caught:
        await _create(client)

    assert 1 == len(mock_api.calls("POST"))
    assert caught.value.outcome_unknown is False


# --- shapes of 2xx answers -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_200_not_json_raises_validation_error(mock_api: MockAPI, client: AsyncClient) -> None:
    """A 200 whose body is not JSON raises APIResponseValidationError with the status and body."""
    mock_api.get(
        JOB_URL,
        status=200,
        body="<html>gateway says hi</html>",
        headers={"x-request-id": "req_html"},
    )

    with pytest.raises(APIResponseValidationError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert APIResponseValidationError is type(caught.value)
    assert 200 == caught.value.status_code
    assert "<html>gateway says hi</html>" == caught.value.body
    assert "req_html" == caught.value.request_id
    assert 1 == len(mock_api.calls("GET"))


@pytest.mark.asyncio
async def test_200_json_of_the_wrong_shape_raises_validation_error(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A 200 carrying a JSON list where a job is due raises APIResponseValidationError."""
    mock_api.get(JOB_URL, status=200, payload=[JOB])

    with pytest.raises(APIResponseValidationError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert APIResponseValidationError is type(caught.value)
    assert 200 == caught.value.status_code
    assert isinstance(caught.value.body, str)
    assert JOB_ID in caught.value.body


@pytest.mark.asyncio
async def test_200_job_missing_required_field_raises_validation_error(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A 200 job object without ``id`` raises APIResponseValidationError, not a cattrs error."""
    mock_api.get(JOB_URL, status=200, payload={"object": "fine_tuning.job", "status": "queued"})

    with pytest.raises(APIResponseValidationError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert APIResponseValidationError is type(caught.value)
    assert 200 == caught.value.status_code


@pytest.mark.asyncio
async def test_200_empty_body_raises_validation_error(
    mock_api: MockAPI, client: AsyncClient
) -> None:
    """A 200 with an empty body where a job is due raises APIResponseValidationError."""
    mock_api.get(JOB_URL, status=200, body=b"")

    with pytest.raises(APIResponseValidationError) as caught:
        await client.fine_tuning.jobs.retrieve(JOB_ID)

    assert 200 == caught.value.status_code
    assert "" == caught.value.body
