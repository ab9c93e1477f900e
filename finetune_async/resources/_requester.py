"""The small protocol through which resources talk to the client, and nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._pagination import AsyncPager
from .._validation import check_after, check_limit

if TYPE_CHECKING:
    from .._sansio import DownloadSink
    from ..types import Page

__all__ = ["Query", "Requester", "paginate"]

T = TypeVar("T")

Query = Sequence[tuple[str, Any]]


class Requester(Protocol):
    """Sends one API call (with the client's retries) and structures its answer."""

    async def request(
        self,
        method: str,
        path: str,
        into: type[T],
        *,
        query: Query = (),
        body: object = None,
        empty: T | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Send ``method path`` and return the answer structured into ``into``.

        Args:
            method: HTTP method.
            path: The API path below the base URL, ids already percent-encoded.
            into: The record type of the answer.
            query: Query pairs; None values are left out.
            body: A JSON body; None sends no body (POSTs still say ``application/json``).
            empty: What to return when a successful answer has no body (a 204 on delete).
            headers: Extra headers for this call.
        """
        ...

    async def poll(
        self, path: str, into: type[T], *, timeout: float | None = None
    ) -> tuple[T, Mapping[str, str]]:
        """GET ``path`` once, without retries; return the record and the response headers.

        ``timeout`` bounds this one attempt, in seconds, in place of the client's total timeout
        (the client's connect and read limits still apply within it); None keeps the client's.
        """
        ...

    async def download(
        self, path: str, sink: DownloadSink, *, headers: Mapping[str, str] | None = None
    ) -> Mapping[str, str]:
        """GET ``path`` and stream the answer into ``sink`` (resumed with ``Range`` on retries).

        Returns the headers of the answer that completed it.
        """
        ...


def paginate(
    requester: Requester,
    path: str,
    page_type: type[Page[T]],
    *,
    limit: object,
    after: object,
    query: Query = (),
) -> AsyncPager[T]:
    """Return the lazy pager of a list endpoint, its ``limit`` and ``after`` checked now.

    Raises:
        InvalidParameterError: A non-positive limit or an empty cursor (nothing is sent).
    """
    page_size = check_limit(limit)

    async def fetch(cursor: str | None) -> Page[T]:
        pairs = (*query, ("after", cursor), ("limit", page_size))
        return await requester.request("GET", path, page_type, query=pairs)

    return AsyncPager(fetch, after=check_after(after))
