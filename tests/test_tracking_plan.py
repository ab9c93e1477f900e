"""The tracker's pure decisions, without a loop or a server: update ids, the cost of a sweep,
the choice of refresh, when a sweep stops, and the shared 429 pause."""

from __future__ import annotations

import random

import pytest

from finetune_async._config import Backoff
from finetune_async._polling import RatePause
from finetune_async.tracking._plan import (
    PAGE_SIZE,
    choose_refresh,
    sweep_cost,
    sweep_done,
    update_id,
)


def test_update_ids_are_a_function_of_the_update() -> None:
    """Same kind, id, sequence number and status: same id; any of them different: another."""
    one = update_id("job", "ftjob-1", 2, "succeeded")
    assert one == update_id("job", "ftjob-1", 2, "succeeded")
    assert one.startswith("upd_")
    others = {
        update_id("batch", "ftjob-1", 2, "succeeded"),
        update_id("job", "ftjob-2", 2, "succeeded"),
        update_id("job", "ftjob-1", 3, "succeeded"),
        update_id("job", "ftjob-1", 2, "failed"),
    }
    assert one not in others
    assert 4 == len(others)
    # A separator, not a concatenation: ("a", "b1") and ("ab", "1") differ.
    assert update_id("job", "a", 11, "x") != update_id("job", "a1", 1, "x")


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        ([], 0),
        ([0, 5, 99], 1),  # all on the first page
        ([0, 100], 2),
        (list(range(10_000)), 100),  # 10,000 dense jobs: 100 pages
        ([250, 251, 252], 3),  # sparse and deep: 3 pages for 3 jobs
        ([0, None, None], 3),  # a page, and two retrieves of the ones not listed
        ([None], 1),
    ],
)
def test_sweep_cost(positions: list[int | None], expected: int) -> None:
    """Pages down to the deepest object seen, plus a retrieve per object not seen."""
    assert expected == sweep_cost(positions)


def test_choose_refresh() -> None:
    """Fixed modes are kept; ``auto`` takes the cheaper one, and sweeps for objects of unknown
    place only when there are a few of them."""
    assert "retrieve" == choose_refresh("retrieve", range(500))
    assert "list" == choose_refresh("list", [None])
    assert "list" == choose_refresh("auto", list(range(150)))
    assert "retrieve" == choose_refresh("auto", [250, 251, 252])
    assert "retrieve" == choose_refresh("auto", [0])  # 1 page = 1 retrieve
    assert "list" == choose_refresh("auto", [0, 1])
    assert "retrieve" == choose_refresh("auto", [], unknown=2)
    assert "list" == choose_refresh("auto", [], unknown=3)
    # 1,000 new jobs beside 3 known deep ones: sweep (they are near the top), not 1,003 GETs.
    assert "list" == choose_refresh("auto", [250, 251, 252], unknown=1000)
    # One new job beside dense known ones: a page and a retrieve beat 101 GETs.
    assert "list" == choose_refresh("auto", list(range(100)), unknown=1)
    assert PAGE_SIZE == 100


def done(**overrides: object) -> bool:
    settings: dict[str, object] = {
        "unseen": 5,
        "has_more": True,
        "page_oldest": 1_000,
        "oldest_unseen": 900.0,
        "pages_read": 1,
        "budgeted": False,
    }
    settings.update(overrides)
    return sweep_done(**settings)  # type: ignore[arg-type]


def test_sweep_stops_when_all_are_seen_or_the_list_ends() -> None:
    """Every live object met, or the last page: stop."""
    assert not done()
    assert done(unseen=0)
    assert done(has_more=False)


def test_sweep_stops_at_a_page_older_than_every_unseen_object() -> None:
    """Newest first: a page that ends before the oldest unseen object was created is the last
    one that could hold it; an unseen object of unknown age keeps the sweep going."""
    assert done(page_oldest=899)
    assert not done(page_oldest=900)  # same second: it may be next
    assert not done(page_oldest=899, oldest_unseen=None)
    assert not done(page_oldest=None)


def test_auto_sweep_stops_when_the_pages_read_match_the_unseen() -> None:
    """The budget: once the pages read are as many as the objects still unseen, retrieving
    them costs no more than a further page could save."""
    assert not done(budgeted=True, pages_read=4, unseen=5)
    assert done(budgeted=True, pages_read=5, unseen=5)
    assert not done(budgeted=False, pages_read=50, unseen=5)


def test_rate_pause_is_floored_and_grows_once_per_round() -> None:
    """A burst of refusals sent together grows the pause once; a refusal of a request sent
    after it grows it again; an answer ends the streak. A short Retry-After never shortens the
    floor; a long one is honoured."""
    pause = RatePause(Backoff(initial=1.0, maximum=60.0, jitter=0.0), random.Random(0))
    assert 0.0 == pause.delay(0.0)
    tickets = [pause.ticket() for _ in range(8)]
    for ticket in tickets:
        pause.refused(ticket, 0.05, now=10.0)
    assert 1 == pause.streak
    assert 1.0 == pause.delay(10.0)
    pause.refused(pause.ticket(), None, now=11.0)
    assert 2 == pause.streak
    assert 2.0 == pause.delay(11.0)
    pause.refused(pause.ticket(), 30.0, now=13.0)
    assert 30.0 == pause.delay(13.0)
    pause.answered(pause.ticket(), None, now=43.0)
    assert 0 == pause.streak
    # Retry-After on a successful answer: honoured as sent, no floor.
    pause.answered(pause.ticket(), 0.5, now=50.0)
    assert 0.5 == pause.delay(50.0)
