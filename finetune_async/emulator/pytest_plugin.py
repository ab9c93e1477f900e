"""A pytest plugin (registered on install) with an ``emulator`` fixture for users' own tests.

The fixture starts an ``Emulator`` on the test's event loop and gives it with an ``AsyncClient``
pointed at it; both are closed after the test. Configure it with the ``emulator`` marker, whose
keywords go to ``Emulator``::

    @pytest.mark.asyncio
    @pytest.mark.emulator(speed=200, faults=Faults(rate_429=0.05))
    async def test_my_poller(emulator):
        job = await emulator.client.fine_tuning.jobs.retrieve(...)
        emulator.advance(60)

It needs pytest-asyncio; without it the fixture is not defined.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import attrs

from .._client import AsyncClient
from ._server import Emulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest

__all__ = ["EmulatorFixture"]


@attrs.frozen
class EmulatorFixture:
    """A running emulator and a client for it.

    Attributes:
        emulator: The running ``Emulator`` (``advance``, ``set_faults``, ``stats``...).
        client: An ``AsyncClient`` on ``emulator.url``.
    """

    emulator: Emulator
    client: AsyncClient

    @property
    def url(self) -> str:
        """The emulator's base URL."""
        return self.emulator.url

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward."""
        self.emulator.advance(seconds)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``emulator`` marker."""
    config.addinivalue_line(
        "markers", "emulator(**kwargs): keyword arguments for the finetune_async emulator fixture"
    )


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[EmulatorFixture]:
        """A running finetune_async emulator and an AsyncClient for it."""
        marker = request.node.get_closest_marker("emulator")
        options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        async with (
            Emulator(**options) as running,
            AsyncClient(base_url=running.url, api_key="test") as client,
        ):
            yield EmulatorFixture(emulator=running, client=client)
