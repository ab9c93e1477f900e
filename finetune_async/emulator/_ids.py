"""Ids in the shapes the real API uses, drawn from the emulator's seeded random generator."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

__all__ = ["IdFactory"]

_ALPHABET = string.ascii_letters + string.digits


class IdFactory:
    """Makes ``prefix-XXXXXXXXXXXXXXXXXXXXXXXX`` ids; the same seed gives the same ids."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        """Draw from ``rng``."""
        self._rng = rng

    def token(self, length: int = 24) -> str:
        """Return a random alphanumeric token."""
        return "".join(self._rng.choices(_ALPHABET, k=length))

    def new(self, prefix: str, sep: str = "-", length: int = 24) -> str:
        """Return a fresh id such as ``ftjob-…`` (``sep="_"`` gives ``ftckpt_…``)."""
        return f"{prefix}{sep}{self.token(length)}"

    def request_id(self) -> str:
        """Return an ``x-request-id`` value."""
        return "req_" + "".join(self._rng.choices("0123456789abcdef", k=32))
