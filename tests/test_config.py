"""Tests of the client's setting records: Timeout and Backoff."""

from __future__ import annotations

import math
from typing import Any

import pytest

from finetune_async._config import DEFAULT_TIMEOUT, Backoff, Timeout

BACKOFF_FIELDS = ["initial", "maximum", "jitter", "max_retry_after"]
TIMEOUT_FIELDS = ["connect", "read", "total"]


@pytest.mark.parametrize("seconds", [30, 2.5, 0])
def test_timeout_of_a_number_bounds_every_field(seconds: float) -> None:
    """A number becomes connect, read and total alike."""
    assert Timeout(connect=seconds, read=seconds, total=seconds) == Timeout.of(seconds)


def test_timeout_of_none_lifts_the_total_but_keeps_connect_and_read() -> None:
    """None lifts the total limit; a stalled connection is still bounded by connect and read."""
    assert Timeout(connect=5.0, read=600.0, total=None) == Timeout.of(None)


def test_timeout_of_a_timeout_is_that_timeout() -> None:
    """A Timeout is returned as it is."""
    timeout = Timeout(connect=1.0, read=None, total=30.0)
    assert timeout is Timeout.of(timeout)


@pytest.mark.parametrize("value", ["5", True, False, [5], b"5"])
def test_timeout_of_a_wrong_type_raises(value: Any) -> None:
    """A string, a bool or any other non-number is refused with TypeError."""
    with pytest.raises(TypeError, match="timeout"):
        Timeout.of(value)


@pytest.mark.parametrize("value", [-1, -0.5, math.nan])
def test_timeout_of_a_negative_number_raises(value: float) -> None:
    """A negative number (or NaN) of seconds is refused with ValueError."""
    with pytest.raises(ValueError, match=">= 0"):
        Timeout.of(value)


@pytest.mark.parametrize("field", TIMEOUT_FIELDS)
def test_timeout_field_rejects_negatives(field: str) -> None:
    """Each field of a Timeout refuses a negative number of seconds, naming the field."""
    with pytest.raises(ValueError, match=f"Timeout.{field}"):
        Timeout(**{field: -1.0})


@pytest.mark.parametrize("field", TIMEOUT_FIELDS)
def test_timeout_field_accepts_none_and_zero(field: str) -> None:
    """None (no limit) and zero are valid for every field."""
    assert getattr(Timeout(**{field: None}), field) is None
    assert 0.0 == getattr(Timeout(**{field: 0.0}), field)


def test_default_timeout() -> None:
    """The default bounds connecting to 5 s and reading and the whole call to 600 s."""
    assert Timeout(connect=5.0, read=600.0, total=600.0) == DEFAULT_TIMEOUT


@pytest.mark.parametrize("field", BACKOFF_FIELDS)
@pytest.mark.parametrize("value", [-1.0, -0.001, math.nan])
def test_backoff_rejects_negatives(field: str, value: float) -> None:
    """Every Backoff field refuses a negative (or NaN) value, naming the field."""
    with pytest.raises(ValueError, match=f"Backoff.{field}"):
        Backoff(**{field: value})


@pytest.mark.parametrize("field", BACKOFF_FIELDS)
def test_backoff_accepts_zero(field: str) -> None:
    """Zero is a valid value for every Backoff field."""
    assert 0.0 == getattr(Backoff(**{field: 0.0}), field)


def test_backoff_defaults() -> None:
    """The default back-off starts at 0.5 s, caps at 8 s, jitters 25 % and honours 60 s hints."""
    assert Backoff(initial=0.5, maximum=8.0, jitter=0.25, max_retry_after=60.0) == Backoff()
