"""One page of a list endpoint."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

__all__ = ["Page"]

T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    """One page of a cursor-paginated list, as the server sent it.

    ``has_more`` is None when the server left it out; the paginators treat that as the last page
    (docs/compat.md: "has_more may be missing (stop then)").

    Attributes:
        data: The items of this page, in the server's order.
        has_more: Whether the server says more pages follow.
        object: Usually ``"list"``.
        first_id: The first item's id, when the server sends it.
        last_id: The last item's id, when the server sends it.
    """

    data: list[T] = attrs.field(factory=list)
    has_more: bool | None = None
    object: str | None = None
    first_id: str | None = None
    last_id: str | None = None
