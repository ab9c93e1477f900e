"""The emulator's clock: real time multiplied by ``speed``, plus whatever ``advance`` added.

Life cycles are functions of this clock, evaluated when a request looks at an object, so nothing
runs in the background and a test can move time by hand (``speed=0`` stops it entirely).
"""

from __future__ import annotations

import time

__all__ = ["Clock"]


class Clock:
    """Virtual Unix time for the emulator.

    ``now()`` starts at the real wall-clock time and moves ``speed`` times faster than it;
    ``advance(seconds)`` jumps forward. Reads and writes are single float operations, so a test
    thread may advance a clock that a server thread reads.
    """

    __slots__ = ("_offset", "_origin_mono", "_origin_wall", "speed")

    def __init__(self, speed: float = 1.0) -> None:
        """Start the clock at the current wall-clock time."""
        if not speed >= 0:
            msg = f"speed must be >= 0, got {speed!r}"
            raise ValueError(msg)
        self.speed = float(speed)
        self._origin_wall = time.time()
        self._origin_mono = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Return the virtual Unix time in seconds."""
        return (
            self._origin_wall + (time.monotonic() - self._origin_mono) * self.speed + self._offset
        )

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` of virtual time."""
        if not seconds >= 0:
            msg = f"advance() takes seconds >= 0, got {seconds!r}"
            raise ValueError(msg)
        self._offset += seconds
