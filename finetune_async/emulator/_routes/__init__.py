"""The emulator's routes, one module per API area, as ``resources/`` has one per area.

Each area module has ``routes()``, the route table ``build_app`` serves; ``_common`` holds what
they share (the error shape, JSON bodies, pages, and bringing jobs up to the clock).
"""

from __future__ import annotations

__all__: list[str] = []
