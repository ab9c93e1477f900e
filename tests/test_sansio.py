"""Pure tests of the sans-I/O core: URLs, retry rules, back-off, status to error, page cursors."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import os
import random
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import attrs
import multidict
import orjson
import pytest

from finetune_async import errors
from finetune_async._config import Backoff
from finetune_async._sansio import (
    Request,
    Response,
    RetryVerdict,
    backoff_delay,
    build_url,
    connection_error_verdict,
    encode_query,
    error_from_response,
    join_url,
    next_cursor,
    parse_retry_after,
    path_segment,
    retry_delay,
    retry_verdict,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

URL = "https://api.test/v1/fine_tuning/jobs"
#: A fixed "now" for the HTTP-date tests: 2026-01-01 12:00:00 UTC.
NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _request(method: str) -> Request:
    return Request(method=method, url=URL, headers={})


def _json(value: object) -> bytes:
    return orjson.dumps(value)


# --- join_url ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "path", "expected"),
    [
        (
            "https://api.openai.com/v1",
            "/fine_tuning/jobs",
            "https://api.openai.com/v1/fine_tuning/jobs",
        ),
        (
            "https://api.openai.com/v1/",
            "/fine_tuning/jobs",
            "https://api.openai.com/v1/fine_tuning/jobs",
        ),
        (
            "https://api.openai.com/v1",
            "fine_tuning/jobs",
            "https://api.openai.com/v1/fine_tuning/jobs",
        ),
        (
            "https://api.openai.com/v1/",
            "fine_tuning/jobs",
            "https://api.openai.com/v1/fine_tuning/jobs",
        ),
        ("http://127.0.0.1:4010", "/fine_tuning/jobs", "http://127.0.0.1:4010/fine_tuning/jobs"),
        ("http://127.0.0.1:4010/", "/fine_tuning/jobs", "http://127.0.0.1:4010/fine_tuning/jobs"),
        (
            "https://x.openai.azure.com/openai",
            "/fine_tuning/jobs",
            "https://x.openai.azure.com/openai/fine_tuning/jobs",
        ),
        ("https://api.portkey.ai/v1", "/files", "https://api.portkey.ai/v1/files"),
    ],
)
def test_join_url_keeps_the_base_path(base_url: str, path: str, expected: str) -> None:
    """The base URL's path is kept and exactly one slash separates it from the API path."""
    assert expected == join_url(base_url, path)


# --- path_segment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ftjob-abc123", "ftjob-abc123"),
        ("0b8a3c2e-1f4d-4e7a-9c3b-5d6e7f8a9b0c", "0b8a3c2e-1f4d-4e7a-9c3b-5d6e7f8a9b0c"),
        ("ft:gpt-4o-mini:org:suffix:id", "ft:gpt-4o-mini:org:suffix:id"),
        ("ft:gpt-4o-mini-2024-07-18:org::A1b2C3", "ft:gpt-4o-mini-2024-07-18:org::A1b2C3"),
        ("a/b", "a%2Fb"),
        ("50%", "50%25"),
        ("my job", "my%20job"),
        ("a?b#c", "a%3Fb%23c"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/abc",
            "arn:aws:bedrock:us-east-1:123456789012:model-customization-job%2Fabc",
        ),
        (
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Amodel-customization-job%2Fabc",
            (
                "arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012"
                "%253Amodel-customization-job%252Fabc"
            ),
        ),
    ],
)
def test_path_segment_encodes_an_opaque_id(value: str, expected: str) -> None:
    """An id becomes one path segment: `/`, `%`, spaces encoded, `:` kept for model ids."""
    assert expected == path_segment(value)


@pytest.mark.parametrize(("value", "expected"), [(".", "%2E"), ("..", "%2E%2E")])
def test_path_segment_encodes_dot_segments(value: str, expected: str) -> None:
    """An id of `.` or `..` is encoded, so no server or proxy removes it as a dot-segment."""
    assert expected == path_segment(value)


# --- encode_query / build_url ------------------------------------------------------------------


def test_encode_query_drops_none() -> None:
    """Pairs whose value is None are left out; falsy values that are not None are kept."""
    assert [("after", "ftjob-1"), ("limit", "0"), ("q", "")] == parse_qsl(
        encode_query([("after", "ftjob-1"), ("before", None), ("limit", 0), ("q", "")]),
        keep_blank_values=True,
    )


def test_encode_query_of_nothing_is_empty() -> None:
    """No pairs, or only None values, encode to the empty string."""
    assert "" == encode_query([])
    assert "" == encode_query([("after", None)])


@pytest.mark.parametrize(("value", "expected"), [(True, "flag=true"), (False, "flag=false")])
def test_encode_query_booleans_are_lower_case(value: bool, expected: str) -> None:
    """Booleans are sent as JSON spells them, not as Python's `True` / `False`."""
    assert expected == encode_query([("flag", value)])


def test_encode_query_metadata_pairs() -> None:
    """`metadata[k]=v` pairs survive encoding and decode to the same keys and values."""
    encoded = encode_query([("metadata[team]", "nlp"), ("metadata[run id]", "a&b=c")])
    assert [("metadata[team]", "nlp"), ("metadata[run id]", "a&b=c")] == parse_qsl(encoded)


def test_build_url_without_query() -> None:
    """With no query the URL is the joined URL, with no trailing `?`."""
    assert "http://127.0.0.1:4010/fine_tuning/jobs" == build_url(
        "http://127.0.0.1:4010", "/fine_tuning/jobs"
    )
    assert "http://127.0.0.1:4010/fine_tuning/jobs" == build_url(
        "http://127.0.0.1:4010", "/fine_tuning/jobs", [("after", None)]
    )


def test_build_url_with_query() -> None:
    """Query pairs follow a `?`, None dropped and booleans spelled true/false."""
    assert "https://api.openai.com/v1/fine_tuning/jobs?limit=2&after=ftjob-1&x=true" == build_url(
        "https://api.openai.com/v1/",
        "/fine_tuning/jobs",
        [("limit", 2), ("before", None), ("after", "ftjob-1"), ("x", True)],
    )


def test_build_url_appends_to_a_query_in_the_path() -> None:
    """A path that already carries a query gets the new pairs after `&`."""
    assert "https://api.test/v1/files?purpose=fine-tune&limit=2" == build_url(
        "https://api.test/v1", "/files?purpose=fine-tune", [("limit", 2)]
    )


def test_build_url_with_a_query_in_the_base_url() -> None:
    """A base URL with `?api-version=` keeps its query after the API path, joined by `&`."""
    url = build_url(
        "https://x.openai.azure.com/openai?api-version=2024-10-21",
        "/fine_tuning/jobs",
        [("limit", 2)],
    )
    parts = urlsplit(url)
    assert "/openai/fine_tuning/jobs" == parts.path
    assert [("api-version", "2024-10-21"), ("limit", "2")] == parse_qsl(parts.query)


# --- retry_verdict -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "should_retry", "retry", "outcome_unknown"),
    [
        # Safe methods: timeouts, lock conflicts, rate limits and server errors are retried.
        ("GET", 408, None, True, False),
        ("GET", 409, None, True, False),
        ("GET", 429, None, True, False),
        ("GET", 500, None, True, False),
        ("GET", 502, None, True, False),
        ("GET", 503, None, True, False),
        ("GET", 504, None, True, False),
        ("DELETE", 503, None, True, False),
        # ... and client errors are not.
        ("GET", 400, None, False, False),
        ("GET", 401, None, False, False),
        ("GET", 403, None, False, False),
        ("GET", 404, None, False, False),
        ("GET", 422, None, False, False),
        # A POST: 429 proves it was not acted on; a 5xx or 408 may come after it was.
        ("POST", 429, None, True, False),
        ("POST", 500, None, False, True),
        ("POST", 502, None, False, True),
        ("POST", 503, None, False, True),
        ("POST", 504, None, False, True),
        ("POST", 408, None, False, True),
        ("POST", 400, None, False, False),
        ("POST", 404, None, False, False),
        # x-should-retry: true forces a retry of a safe request, and of a POST the server
        # refused (a 4xx proves it did nothing) ...
        ("GET", 400, "true", True, False),
        ("GET", 404, "true", True, False),
        ("POST", 400, "true", True, False),
        ("POST", 409, "TRUE", True, False),
        # ... but never re-sends a POST whose outcome is unknown (docs/api.md: a 5xx on a create
        # raises with the outcome unknown): a second job is worse than an error.
        ("POST", 500, "true", False, True),
        ("POST", 503, "TRUE", False, True),
        ("POST", 408, "true", False, True),
        # x-should-retry: false forbids one, and says nothing about whether a POST was acted on.
        ("GET", 503, "false", False, False),
        ("GET", 429, "false", False, False),
        ("POST", 429, "false", False, False),
        ("POST", 400, "false", False, False),
        ("POST", 500, "false", False, True),
        ("POST", 503, "False", False, True),
        ("POST", 408, "false", False, True),
    ],
)
def test_retry_verdict(
    method: str, status: int, should_retry: str | None, retry: bool, outcome_unknown: bool
) -> None:
    """Each (method, status, x-should-retry) gets the documented retry and outcome verdict."""
    headers = {} if should_retry is None else {"x-should-retry": should_retry}
    assert RetryVerdict(retry=retry, outcome_unknown=outcome_unknown) == retry_verdict(
        _request(method), status, headers
    )


@pytest.mark.parametrize(("value", "retry"), [("true", True), ("false", False)])
def test_retry_verdict_reads_case_insensitive_headers(value: str, retry: bool) -> None:
    """A mixed-case `X-Should-Retry` in a case-insensitive multidict is honoured."""
    headers = multidict.CIMultiDict({"X-Should-Retry": value})
    assert retry == retry_verdict(_request("GET"), 404 if retry else 503, headers).retry


# --- connection_error_verdict ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "may_have_reached_server", "expected"),
    [
        ("GET", True, RetryVerdict(retry=True)),
        ("GET", False, RetryVerdict(retry=True)),
        ("DELETE", True, RetryVerdict(retry=True)),
        ("POST", False, RetryVerdict(retry=True)),
        ("POST", True, RetryVerdict(retry=False, outcome_unknown=True)),
    ],
)
def test_connection_error_verdict(
    method: str, may_have_reached_server: bool, expected: RetryVerdict
) -> None:
    """Safe methods always retry; a POST only when it certainly never reached the server."""
    exc = errors.APIConnectionError(may_have_reached_server=may_have_reached_server)
    assert expected == connection_error_verdict(_request(method), exc)


def test_connection_error_verdict_on_a_post_timeout() -> None:
    """A read timeout of a POST may come after the server acted: not retried, outcome unknown."""
    exc = errors.APITimeoutError()
    assert RetryVerdict(retry=False, outcome_unknown=True) == connection_error_verdict(
        _request("POST"), exc
    )


# --- parse_retry_after -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "0"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),
        # An unusable retry-after-ms falls back to retry-after.
        ({"retry-after-ms": "soon", "retry-after": "7"}, 7.0),
        ({"retry-after-ms": "-5", "retry-after": "7"}, 7.0),
        ({"retry-after-ms": "nan", "retry-after": "7"}, 7.0),
    ],
)
def test_parse_retry_after_seconds(headers: Mapping[str, str], expected: float) -> None:
    """`retry-after-ms` wins over `retry-after`; seconds may be integers or decimals."""
    assert expected == parse_retry_after(headers)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-request-id": "req_1"},
        {"retry-after": ""},
        {"retry-after": "soon"},
        {"retry-after": "12abc"},
        {"retry-after": "-1"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "-inf"},
        {"retry-after": "Mon, 32 Foo 2024 99:99:99 GMT"},
        {"retry-after-ms": "inf"},
        {"retry-after-ms": "garbage"},
    ],
)
def test_parse_retry_after_none(headers: Mapping[str, str]) -> None:
    """No header, garbage, negative, NaN and infinite values give no hint."""
    assert parse_retry_after(headers) is None


def test_parse_retry_after_http_date() -> None:
    """An HTTP date in the future gives the seconds from `now` until then."""
    header = email.utils.format_datetime(NOW + dt.timedelta(seconds=30), usegmt=True)
    assert 30.0 == parse_retry_after({"retry-after": header}, now=NOW.timestamp())


def test_parse_retry_after_http_date_in_the_past() -> None:
    """An HTTP date already past means no wait at all."""
    header = email.utils.format_datetime(NOW - dt.timedelta(hours=1), usegmt=True)
    assert 0.0 == parse_retry_after({"retry-after": header}, now=NOW.timestamp())


@contextlib.contextmanager
def _local_timezone(name: str) -> Iterator[None]:
    """Run the block with the process's local time zone set to ``name``."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset is POSIX only")
@pytest.mark.parametrize(
    "header",
    [
        "Thu, 01 Jan 2026 12:00:45 GMT",  # IMF-fixdate
        "Thursday, 01-Jan-26 12:00:45 GMT",  # obsolete RFC 850 format
        "Thu Jan  1 12:00:45 2026",  # obsolete asctime format, GMT by definition (RFC 9110)
    ],
)
def test_parse_retry_after_http_date_formats_are_gmt(header: str) -> None:
    """Every HTTP-date format RFC 9110 accepts is read as GMT, whatever the local time zone."""
    with _local_timezone("America/New_York"):
        if time.timezone == 0:
            pytest.skip("no time zone database to switch the local time zone")
        assert 45.0 == parse_retry_after({"retry-after": header}, now=NOW.timestamp())


def test_parse_retry_after_case_insensitive_headers() -> None:
    """A mixed-case `Retry-After` in a case-insensitive multidict is read."""
    headers = multidict.CIMultiDict({"Retry-After": "4", "Content-Type": "application/json"})
    assert 4.0 == parse_retry_after(headers)
    headers = multidict.CIMultiDict({"Retry-After-Ms": "20", "Retry-After": "4"})
    assert 0.02 == parse_retry_after(headers)


# --- backoff_delay / retry_delay ---------------------------------------------------------------


class _FixedRandom(random.Random):
    """A Random whose `random()` always returns the same value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


NO_JITTER = Backoff(initial=0.5, maximum=8.0, jitter=0.0)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (10, 8.0)],
)
def test_backoff_delay_grows_exponentially_up_to_the_maximum(attempt: int, expected: float) -> None:
    """Without jitter the n-th retry sleeps min(maximum, initial * 2**n)."""
    assert expected == backoff_delay(attempt, NO_JITTER, random.Random(1))


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 5, 6])
def test_backoff_delay_jitter_stays_in_bounds(attempt: int) -> None:
    """With jitter j the sleep is within [base * (1 - j), base] for every seed."""
    backoff = Backoff(initial=0.5, maximum=8.0, jitter=0.25)
    base = min(8.0, 0.5 * 2**attempt)
    delays = [backoff_delay(attempt, backoff, random.Random(seed)) for seed in range(200)]
    assert all(base * 0.75 <= delay <= base for delay in delays)
    assert len(set(delays)) > 1  # the jitter does vary from one client to another


def test_backoff_delay_without_rng_stays_in_bounds() -> None:
    """The module's own random source gives the same bounds."""
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.5)
    assert all(2.0 <= backoff_delay(2, backoff) <= 4.0 for _ in range(100))


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 4.0), (0.5, 3.5), (1.0, 3.0)])
def test_backoff_delay_takes_the_drawn_part_of_the_jitter(draw: float, expected: float) -> None:
    """The random draw removes that fraction of `jitter * base` from the base delay."""
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.25)
    assert expected == backoff_delay(2, backoff, _FixedRandom(draw))


def test_backoff_delay_is_never_negative() -> None:
    """A jitter above 1 cannot make the sleep negative."""
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=3.0)
    assert 0.0 == backoff_delay(1, backoff, _FixedRandom(0.9))


@pytest.mark.parametrize("attempt", [0, 1, 5])
def test_backoff_delay_zero(attempt: int) -> None:
    """`Backoff(initial=0, maximum=0)` retries at once, default jitter or not."""
    assert 0.0 == backoff_delay(attempt, Backoff(initial=0, maximum=0), random.Random(7))


def test_retry_delay_without_hint_is_the_backoff() -> None:
    """No headers, or headers without a hint, give the back-off delay."""
    assert 2.0 == retry_delay(2, None, NO_JITTER)
    assert 2.0 == retry_delay(2, {"x-request-id": "req_1"}, NO_JITTER)
    assert 2.0 == retry_delay(2, {"retry-after": "soon"}, NO_JITTER)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "100"}, 0.1),
        ({"retry-after": "60"}, 60.0),
    ],
)
def test_retry_delay_server_hint_replaces_the_backoff(
    headers: Mapping[str, str], expected: float
) -> None:
    """A server hint up to `max_retry_after` is the delay, however long the back-off would be."""
    backoff = Backoff(initial=30.0, maximum=30.0, jitter=0.0, max_retry_after=60.0)
    assert expected == retry_delay(5, headers, backoff)


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "0"},
        {"retry-after-ms": "0"},
        {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},  # a date long past
    ],
)
def test_retry_delay_treats_a_zero_or_past_hint_as_no_hint(headers: Mapping[str, str]) -> None:
    """`Retry-After: 0` or a past date gives the back-off, not an immediate retry (no busy loop)."""
    backoff = Backoff(initial=1.5, maximum=30.0, jitter=0.0)
    assert 6.0 == retry_delay(2, headers, backoff)


def test_retry_delay_http_date_hint() -> None:
    """An HTTP-date hint is measured from `now`."""
    header = email.utils.format_datetime(NOW + dt.timedelta(seconds=12), usegmt=True)
    assert 12.0 == retry_delay(0, {"retry-after": header}, NO_JITTER, now=NOW.timestamp())


@pytest.mark.parametrize(
    "headers", [{"retry-after": "61"}, {"retry-after-ms": "60001"}, {"retry-after": "3600"}]
)
def test_retry_delay_hint_too_long_stops_retrying(headers: Mapping[str, str]) -> None:
    """A hint above `max_retry_after` gives None: stop rather than retry too early."""
    backoff = Backoff(initial=0.5, maximum=8.0, max_retry_after=60.0)
    assert retry_delay(0, headers, backoff) is None


# --- error_from_response -----------------------------------------------------------------------


OPENAI_ERROR = {
    "error": {
        "message": "Invalid file format for Fine-Tuning API.",
        "type": "invalid_request_error",
        "param": "training_file",
        "code": "invalid_file_format",
    }
}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.UnprocessableEntityError),
        (429, errors.RateLimitError),
        (500, errors.InternalServerError),
        (502, errors.InternalServerError),
        (503, errors.InternalServerError),
        (418, errors.APIStatusError),
        (415, errors.APIStatusError),
    ],
)
def test_error_from_response_class(status: int, cls: type[errors.APIStatusError]) -> None:
    """Each status maps to its exception class; others get a plain APIStatusError."""
    err = error_from_response(Response(status=status, headers={}, body=_json(OPENAI_ERROR)))
    assert cls is type(err)
    assert status == err.status_code


def test_error_from_response_openai_body() -> None:
    """OpenAI's error object fills message, code, param, type, error and body."""
    err = error_from_response(Response(status=400, headers={}, body=_json(OPENAI_ERROR)))
    assert "Invalid file format for Fine-Tuning API." == err.message
    assert "invalid_file_format" == err.code
    assert "training_file" == err.param
    assert "invalid_request_error" == err.type
    assert OPENAI_ERROR["error"] == err.error
    assert OPENAI_ERROR == err.body
    assert err.outcome_unknown is False


def test_error_from_response_openai_body_with_nulls() -> None:
    """Members sent as null stay None."""
    body = {"error": {"message": "No such job", "type": None, "param": None, "code": None}}
    err = error_from_response(Response(status=404, headers={}, body=_json(body)))
    assert "No such job" == err.message
    assert (None, None, None) == (err.code, err.param, err.type)


def test_error_from_response_openai_through_portkey() -> None:
    """OpenAI's error relayed by Portkey keeps its prefixed message and the provider key."""
    body = {
        "error": {
            "message": "openai error: Invalid file format for Fine-Tuning API.",
            "type": "invalid_request_error",
            "param": "training_file",
            "code": "invalid_file_format",
        },
        "provider": "openai",
    }
    err = error_from_response(Response(status=400, headers={}, body=_json(body)))
    assert errors.BadRequestError is type(err)
    assert "openai error: Invalid file format for Fine-Tuning API." == err.message
    assert "invalid_file_format" == err.code
    assert "training_file" == err.param
    assert body == err.body


def test_error_from_response_portkey_own_failure() -> None:
    """Portkey's own `{"status": "failure", "message": ...}` gives its message."""
    body = {"status": "failure", "message": "Something went wrong"}
    headers = {"x-portkey-gateway-exception": "true"}
    err = error_from_response(Response(status=500, headers=headers, body=_json(body)))
    assert errors.InternalServerError is type(err)
    assert "Something went wrong" == err.message
    assert body == err.body
    assert err.code is None
    assert "Something went wrong" in str(err)


def test_error_from_response_azure_innererror() -> None:
    """Azure's error with `innererror` gives its code and message and keeps the inner error."""
    body = {
        "error": {
            "code": "invalidPayload",
            "message": "The specified base model does not support fine-tuning.",
            "innererror": {"code": "ModelNotSupported", "message": "gpt-35 is not supported"},
        }
    }
    err = error_from_response(Response(status=400, headers={}, body=_json(body)))
    assert "The specified base model does not support fine-tuning." == err.message
    assert "invalidPayload" == err.code
    assert err.error is not None
    assert {"code": "ModelNotSupported", "message": "gpt-35 is not supported"} == err.error[
        "innererror"
    ]


def test_error_from_response_error_is_a_string() -> None:
    """`{"error": "a string"}` gives that string as the message."""
    body = {"error": "Invalid API key"}
    err = error_from_response(Response(status=401, headers={}, body=_json(body)))
    assert errors.AuthenticationError is type(err)
    assert "Invalid API key" == err.message
    assert body == err.body
    assert err.code is None


def test_error_from_response_plain_text() -> None:
    """A text body is the message and the body."""
    text = "upstream connect error or disconnect/reset before headers"
    err = error_from_response(Response(status=503, headers={}, body=text.encode()))
    assert text == err.message
    assert text == err.body
    assert err.error is None
    assert text in str(err)


def test_error_from_response_long_text_is_cut() -> None:
    """A long text body is cut to 500 characters in the message but kept whole in `body`."""
    text = "x" * 2000
    err = error_from_response(Response(status=502, headers={}, body=text.encode()))
    assert "x" * 500 + "…" == err.message
    assert text == err.body


@pytest.mark.parametrize("body", [b"", b"   "])
def test_error_from_response_empty_body(body: bytes) -> None:
    """An empty body still gives a message naming the status."""
    err = error_from_response(Response(status=502, headers={}, body=body))
    assert errors.InternalServerError is type(err)
    assert "502" in err.message
    assert "502" in str(err)
    assert err.error is None


def test_error_from_response_invalid_json() -> None:
    """A body that is not valid JSON is kept as text and used as the message."""
    body = b'{"error": {"message": "cut sh'
    err = error_from_response(Response(status=500, headers={}, body=body))
    assert body.decode() == err.body
    assert body.decode() == err.message
    assert err.error is None


def test_error_from_response_json_without_error_object() -> None:
    """JSON with no error object (FastAPI's `detail`) appears in the message."""
    body = {"detail": "Not Found"}
    err = error_from_response(Response(status=404, headers={}, body=_json(body)))
    assert errors.NotFoundError is type(err)
    assert "Not Found" in err.message
    assert err.error is None
    assert body == err.body


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "req_123"}, "req_123"),
        ({"apim-request-id": "0f6c1a2b-apim"}, "0f6c1a2b-apim"),
        ({"x-request-id": "req_123", "apim-request-id": "0f6c1a2b-apim"}, "req_123"),
        ({"x-request-id": "", "apim-request-id": "0f6c1a2b-apim"}, "0f6c1a2b-apim"),
        (multidict.CIMultiDict({"X-Request-ID": "req_mixed"}), "req_mixed"),
        ({}, None),
    ],
)
def test_error_from_response_request_id(headers: Mapping[str, str], expected: str | None) -> None:
    """The request id comes from `x-request-id`, else `apim-request-id`."""
    err = error_from_response(Response(status=404, headers=headers, body=_json(OPENAI_ERROR)))
    assert expected == err.request_id
    assert headers == err.headers


def test_error_str_has_status_message_and_request_id() -> None:
    """`str(err)` names the status, the server's message and the request id."""
    body = {"error": {"message": "Could not find job ftjob-1", "code": "not_found"}}
    headers = {"x-request-id": "req_abc"}
    text = str(error_from_response(Response(status=404, headers=headers, body=_json(body))))
    assert "404" in text
    assert "Could not find job ftjob-1" in text
    assert "req_abc" in text


def test_error_from_response_outcome_unknown() -> None:
    """`outcome_unknown=True` is set on the error and said in its message."""
    response = Response(status=502, headers={"x-request-id": "req_9"}, body=b"Bad Gateway")
    err = error_from_response(response, method="POST", url=URL, outcome_unknown=True)
    assert err.outcome_unknown is True
    assert ("POST", URL) == (err.method, err.url)
    text = str(err)
    assert "outcome is unknown" in text
    assert "Bad Gateway" in text
    assert "502" in text
    assert "req_9" in text


def test_error_from_response_outcome_known() -> None:
    """Without `outcome_unknown` the message does not claim the outcome is unknown."""
    response = Response(status=502, headers={}, body=b"Bad Gateway")
    err = error_from_response(response, method="GET", url=URL)
    assert err.outcome_unknown is False
    assert "outcome is unknown" not in str(err)


# --- the exception tree ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "child"),
    [
        (errors.FinetuneError, errors.APIError),
        (errors.APIError, errors.APIConnectionError),
        (errors.APIConnectionError, errors.APITimeoutError),
        (errors.APIError, errors.APIStatusError),
        (errors.APIStatusError, errors.BadRequestError),
        (errors.APIStatusError, errors.AuthenticationError),
        (errors.APIStatusError, errors.PermissionDeniedError),
        (errors.APIStatusError, errors.NotFoundError),
        (errors.APIStatusError, errors.ConflictError),
        (errors.APIStatusError, errors.UnprocessableEntityError),
        (errors.APIStatusError, errors.RateLimitError),
        (errors.APIStatusError, errors.InternalServerError),
        (errors.APIError, errors.APIResponseValidationError),
        (errors.FinetuneError, errors.InvalidParameterError),
        (ValueError, errors.InvalidParameterError),
        (errors.FinetuneError, errors.WaitTimeoutError),
    ],
)
def test_exception_tree(parent: type[Exception], child: type[Exception]) -> None:
    """Each exception sits under its parent in the documented tree."""
    assert issubclass(child, parent)


@pytest.mark.parametrize(
    ("unrelated", "cls"),
    [
        (errors.APIStatusError, errors.APIConnectionError),
        (errors.APIConnectionError, errors.APIStatusError),
        (errors.APIStatusError, errors.APIResponseValidationError),
        (errors.APIError, errors.InvalidParameterError),
        (errors.APIError, errors.WaitTimeoutError),
        (errors.InternalServerError, errors.RateLimitError),
    ],
)
def test_exception_tree_branches_are_separate(
    unrelated: type[Exception], cls: type[Exception]
) -> None:
    """Sibling branches of the tree do not catch each other."""
    assert not issubclass(cls, unrelated)


# --- next_cursor -------------------------------------------------------------------------------


@attrs.frozen
class _Item:
    id: str


ITEMS = [_Item("ftjob-1"), _Item("ftjob-2"), _Item("ftjob-3")]


@pytest.mark.parametrize(
    ("data", "has_more", "last_id", "expected"),
    [
        (ITEMS, False, None, None),
        (ITEMS, None, None, None),
        (ITEMS, False, "ftjob-3", None),
        (ITEMS, True, None, "ftjob-3"),
        (ITEMS, True, "ftjob-99", "ftjob-99"),
        (ITEMS, True, "", "ftjob-3"),
        (ITEMS[:1], True, None, "ftjob-1"),
        ([], True, None, None),
        ([], True, "ftjob-3", None),
        ([], None, None, None),
    ],
)
def test_next_cursor(
    data: list[_Item], has_more: bool | None, last_id: str | None, expected: str | None
) -> None:
    """The cursor is `last_id`, else the last item's id; None on the last or an empty page."""
    assert expected == next_cursor(data, has_more, last_id)
