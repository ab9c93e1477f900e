"""Lists as lazy async generators over ``after``/``limit`` pages (the shape of gidgethub's getiter).

Nothing is sent until iteration starts, one page is in flight at a time, and iteration stops when
a page says ``has_more: false``, leaves ``has_more`` out, or is empty. No timeout or cancel scope
spans a ``yield`` (ARCHITECTURE.md rule 3): each page is fetched by a plain coroutine call and the
items are yielded outside it, so the sync client can drive these generators from a portal.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Generic, TypeVar

from ._sansio import next_cursor
from .types import Page

__all__ = ["AsyncPager", "PageFetcher"]

T = TypeVar("T")

PageFetcher = Callable[[str | None], Awaitable[Page[T]]]
"""Fetches the page that starts after the given cursor (None: the first page)."""


class AsyncPager(Generic[T]):
    """An async iterable over every item of a list, fetching pages as it goes.

    ``async for item in pager`` walks items; ``async for page in pager.pages()`` walks pages (with
    ``has_more`` and the cursors). Each iteration starts again from the first page.
    """

    __slots__ = ("_after", "_fetch")

    def __init__(self, fetch: PageFetcher[T], *, after: str | None = None) -> None:
        """Wrap ``fetch``; ``after`` is the cursor the first page starts after."""
        self._fetch = fetch
        self._after = after

    def __aiter__(self) -> AsyncIterator[T]:
        """Iterate over every item of every page."""
        return self._items()

    async def pages(self) -> AsyncGenerator[Page[T]]:
        """Iterate over the pages themselves."""
        cursor = self._after
        while True:
            page = await self._fetch(cursor)
            yield page
            cursor = next_cursor(page.data, page.has_more, page.last_id)
            if cursor is None:
                return

    async def _items(self) -> AsyncGenerator[T]:
        # aclosing: an early `break` in the caller closes the page generator too, at once.
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                for item in page.data:
                    yield item
