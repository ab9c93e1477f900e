"""The terminal's rendering of timestamps (``finetune_async.cli._output.local_time``)."""

from __future__ import annotations

import pytest

from finetune_async.cli._output import is_time_field, local_time

SECONDS = 1_764_806_400  # 2025-12-04T00:00:00Z


def test_milliseconds_read_as_the_same_time_as_seconds() -> None:
    """Some providers send milliseconds (docs/compat.md): the same instant is shown."""
    assert local_time(SECONDS) == local_time(SECONDS * 1000)
    assert local_time(SECONDS).startswith(("2025-12-03T", "2025-12-04T"))


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, ""), ("soon", "soon"), (True, "True"), (10**30, str(10**30))],
    ids=["none", "text", "bool", "out-of-range"],
)
def test_what_is_not_a_timestamp_is_shown_as_sent(value: object, shown: str) -> None:
    """No value makes the table fail: a non-number, or one out of range, is shown as it is."""
    assert shown == local_time(value)


def test_time_fields() -> None:
    """`*_at`, `created` and `estimated_finish` hold timestamps; `step_number` does not."""
    assert all(map(is_time_field, ("created_at", "finished_at", "created", "estimated_finish")))
    assert not any(map(is_time_field, ("step_number", "bytes", "status")))
