"""The paths of a file and of its content, shared by the resources that read files.

``files`` owns them; ``batches.results`` and ``jobs.metrics`` read result files the same way.
"""

from __future__ import annotations

from typing import Final

from .._sansio import path_segment
from .._validation import check_id

__all__ = ["ANY_CONTENT", "file_path"]

# Prism answers 406 to `Accept: application/octet-stream` on the content route (docs/compat.md).
ANY_CONTENT: Final = {"Accept": "*/*"}


def file_path(file_id: str, suffix: str = "") -> str:
    """Return ``/files/{id}{suffix}`` with the id checked and percent-encoded."""
    return f"/files/{path_segment(check_id(file_id, 'file_id'))}{suffix}"
