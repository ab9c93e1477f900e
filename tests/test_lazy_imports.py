"""``import finetune_async`` leaves aiohttp and anyio unloaded until a client needs them."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return which of aiohttp / anyio it loaded."""
    probe = (
        f"{code}\nimport sys\nprint(','.join(m for m in ('aiohttp', 'anyio') if m in sys.modules))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_import_loads_neither_aiohttp_nor_anyio() -> None:
    """The package, its records and its data helpers import without the network stack."""
    assert [] == _modules_after("import finetune_async, finetune_async.data, finetune_async.types")


def test_first_async_client_loads_aiohttp_only() -> None:
    """Creating an AsyncClient brings aiohttp in (its transport); anyio waits for a Client."""
    assert ["aiohttp"] == _modules_after(
        "from finetune_async import AsyncClient\nAsyncClient(api_key='k')"
    )


def test_first_blocking_call_loads_anyio() -> None:
    """A blocking Client starts its anyio portal on its first call, not when it is made."""
    code = (
        "from finetune_async import Client\n"
        "client = Client(api_key='k', base_url='http://127.0.0.1:9/v1', max_retries=0)\n"
        "import sys; before = 'anyio' in sys.modules\n"
        "try:\n    client.models.retrieve('m')\nexcept Exception:\n    pass\n"
        "client.close()\nassert not before, 'anyio was loaded before the first call'"
    )
    assert ["aiohttp", "anyio"] == _modules_after(code)
