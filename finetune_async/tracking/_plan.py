"""The tracker's pure decisions: update ids, which refresh is cheaper, when a sweep stops.

Nothing here does I/O or needs an event loop; ``tests/test_tracking_plan.py`` calls these with
plain values (docs/architecture.md: decisions are pure, I/O is thin).

A **sweep** walks a list endpoint (``GET /fine_tuning/jobs``, ``GET /batches``) newest first,
``PAGE_SIZE`` objects a page, and reads the state of every tracked object it meets: one request
for up to 100 objects, where a **retrieve** costs one request each. A sweep pays for the untracked
objects in between too, so it is cheaper only when the tracked ones are dense near the top of
the list. The last sweep's positions say how dense they were.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable


__all__ = [
    "PAGE_SIZE",
    "choose_refresh",
    "sweep_cost",
    "sweep_done",
    "update_id",
]

#: Objects per page of a sweep: the most both list endpoints give.
PAGE_SIZE: Final = 100
#: ``"auto"`` sweeps for objects of unknown place only when there are at least this many: below
#: it a sweep's worst case (a page, then the retrieves anyway) costs more than retrieving.
_MIN_BLIND_SWEEP: Final = 3

Refresh = Literal["list", "retrieve"]


def update_id(kind: str, object_id: str, seq: int, status: str) -> str:
    """Return the stable id of an object's ``seq``-th update (from 1), to status ``status``.

    A function of what the update is, not of when it was seen: a change recorded, lost in a crash
    before it was delivered, and observed again after the restart gets the same id.
    """
    digest = hashlib.blake2b(
        f"{kind}\0{object_id}\0{seq}\0{status}".encode("utf-8", "surrogatepass"), digest_size=12
    ).hexdigest()
    return f"upd_{digest}"


def sweep_cost(positions: Iterable[int | None], page_size: int = PAGE_SIZE) -> int:
    """Return the requests a sweep would cost, from where each live object was last listed.

    Args:
        positions: For each live tracked object of one kind, its index (from 0) in the list at
            the last sweep, or None if that sweep did not see it (it will be retrieved).
        page_size: Objects per page.

    Returns:
        The pages down to the deepest object seen, plus one retrieve per object not seen.
    """
    deepest = -1
    unseen = 0
    for position in positions:
        if position is None:
            unseen += 1
        else:
            deepest = max(deepest, position)
    pages = 0 if deepest < 0 else deepest // page_size + 1
    return pages + unseen


def choose_refresh(
    mode: str, positions: Iterable[int | None], *, unknown: int = 0, page_size: int = PAGE_SIZE
) -> Refresh:
    """Pick how to refresh the live objects of one kind.

    Args:
        mode: The tracker's ``refresh``: ``"list"``, ``"retrieve"`` or ``"auto"``.
        positions: As for ``sweep_cost``, one per live object that went through a sweep.
        unknown: How many live objects no sweep has looked for yet (added since, or the
            tracker just started): nothing says where they are.
        page_size: Objects per page.

    Returns:
        ``"list"`` or ``"retrieve"``. ``"auto"`` sweeps when the last sweeps say a sweep costs
        fewer requests than one retrieve per object. With a few objects of unknown place it
        sweeps blind: the sweep's budget (``sweep_done``) keeps a bad guess within twice the
        retrieves' cost, and new objects are near the top of the list, where a sweep is cheap.
    """
    if mode in {"list", "retrieve"}:
        return "list" if mode == "list" else "retrieve"
    known = list(positions)
    if unknown >= _MIN_BLIND_SWEEP:
        return "list"
    cost = sweep_cost(known, page_size) + unknown
    return "list" if cost < len(known) + unknown else "retrieve"


def sweep_done(
    *,
    unseen: int,
    has_more: bool,
    page_oldest: int | None,
    oldest_unseen: float | None,
    pages_read: int,
    budgeted: bool,
) -> bool:
    """Whether a sweep stops after the page it just read.

    Args:
        unseen: Live tracked objects of this kind the sweep has not met yet.
        has_more: The page's ``has_more``.
        page_oldest: The ``created_at`` of the page's last (oldest) object, if it has one.
        oldest_unseen: The oldest ``created_at`` among the unseen objects, or None when one of
            them has never been observed (its age is unknown, so no page is known to be past it).
        pages_read: Pages read so far in this sweep.
        budgeted: Stop once the pages read are as many as the unseen objects (``"auto"``): a
            further page cannot cost less than retrieving those, so the sweep never costs more
            than twice what retrieving them all would have.

    Returns:
        True when every live object was seen, the list ended, the page is older than every
        unseen object (newest first: none of them comes later), or the budget is spent. The
        objects still unseen are then retrieved one by one.
    """
    if unseen == 0 or not has_more:
        return True
    if page_oldest is not None and oldest_unseen is not None and page_oldest < oldest_unseen:
        return True
    return budgeted and pages_read >= unseen
