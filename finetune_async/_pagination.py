"""Lists as lazy async generators over ``after``/``limit`` pages (the shape of gidgethub's getiter).

Nothing is sent until iteration starts, one page is in flight at a time, and iteration stops when
a page says ``has_more: false``, leaves ``has_more`` out, or is empty. A page whose next cursor was
already sent in this walk (the same cursor again, or a cycle A, B, A) ends the walk with
``APIResponseValidationError``: following it would ask for the same pages forever. No timeout or
cancel scope spans a ``yield`` (docs/architecture.md rule 3): each page is fetched by a plain
coroutine call and the items are yielded outside it, so the sync client can drive these generators
from a portal; the blocking ``Pager`` crosses to the portal once per page, not once per item.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from contextlib import aclosing, closing
from typing import Generic, Protocol, TypeVar

from ._sansio import next_cursor
from .errors import APIResponseValidationError
from .types import Page

__all__ = [
    "AsyncPager",
    "ClosableAsyncIterator",
    "PageFetcher",
    "Pager",
    "Runner",
    "iterate_blocking",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

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
        """Iterate over the pages themselves.

        Raises:
            APIResponseValidationError: A page points back at a cursor this walk already sent
                (its items would be ones already seen); raised before that page is yielded.
        """
        cursor = self._after
        sent: set[str | None] = set()
        while True:
            sent.add(cursor)
            page = await self._fetch(cursor)
            cursor = next_cursor(page.data, page.has_more, page.last_id)
            if cursor is not None and cursor in sent:
                raise _repeated_cursor(cursor)
            yield page
            if cursor is None:
                return

    async def _items(self) -> AsyncGenerator[T]:
        # aclosing: an early `break` in the caller closes the page generator too, at once.
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                for item in page.data:
                    yield item


def _repeated_cursor(cursor: str) -> APIResponseValidationError:
    # A server that says has_more with the same cursor again (or a cycle A, B, A) would make the
    # walk ask for the same pages forever; 41,225 requests in 10 s were seen, nothing yielded.
    return APIResponseValidationError(
        f"the list's pages loop: the next page starts after {cursor!r} again, a cursor this "
        "walk already sent (has_more is true and the cursor does not move on)",
        status_code=200,
    )


class Runner(Protocol):
    """Runs a coroutine function to completion from synchronous code (the sync client's portal)."""

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``func()`` on the event loop and return its result."""
        ...

    @property
    def is_running(self) -> bool:
        """Whether coroutines can still be run (the portal is not closed)."""
        ...


class ClosableAsyncIterator(Protocol[T_co]):
    """An async iterator that can be closed early: async generators, ``JobWatch``."""

    def __anext__(self) -> Awaitable[T_co]:
        """Return the next item."""
        ...

    def aclose(self) -> Awaitable[object]:
        """Stop early and release what it holds."""
        ...


def iterate_blocking(runner: Runner, agen: ClosableAsyncIterator[T]) -> Generator[T]:
    """Drive an async generator from synchronous code, one item per portal call.

    Leaving the loop early (``break``, an exception, ``close()``) closes the async generator on
    the portal at once, so no further page is requested.
    """
    try:
        while True:
            try:
                item = runner.call(agen.__anext__)
            except StopAsyncIteration:
                return
            yield item
    finally:
        if runner.is_running:
            runner.call(agen.aclose)


def _items_of(runner: Runner, pages: AsyncGenerator[Page[T]]) -> Generator[T]:
    # closing: leaving the items early closes the page iterator, which closes ``pages`` on the
    # portal at once, as iterate_blocking does for any early exit.
    with closing(iterate_blocking(runner, pages)) as blocking_pages:
        for page in blocking_pages:
            yield from page.data


class Pager(Generic[T]):
    """The blocking twin of ``AsyncPager``: ``for item in pager`` and ``pager.pages()``."""

    __slots__ = ("_pager", "_runner")

    def __init__(self, runner: Runner, pager: AsyncPager[T]) -> None:
        """Wrap ``pager``, running its pages through ``runner``."""
        self._runner = runner
        self._pager = pager

    def __iter__(self) -> Iterator[T]:
        """Iterate over every item of every page, crossing to the event loop once per page.

        A crossing to the portal's loop costs far more than taking an item from a page already
        fetched, so each page comes across whole and its items are yielded here.
        """
        return _items_of(self._runner, self._pager.pages())

    def pages(self) -> Iterator[Page[T]]:
        """Iterate over the pages themselves."""
        return iterate_blocking(self._runner, self._pager.pages())
