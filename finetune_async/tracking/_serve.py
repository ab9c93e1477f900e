"""``WebhookServer``: a tracker's webhook receiver served by aiohttp.web on the tracker's loop.

The receiver itself (verification, 400/405/413, deduplication on ``webhook-id``) is
``webhooks.WebhookReceiver``'s; this module only binds it to a host and port with an
``AppRunner`` and a ``TCPSite``, and stops them again. aiohttp.web is imported inside
``start_webhook_server`` only, as ``WebhookReceiver.aiohttp_app`` does, so importing
``finetune_async.tracking`` never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from ..webhooks import WebhookReceiver

__all__ = ["WebhookServer", "start_webhook_server"]

#: Seconds a delivery in progress may take to finish when the server stops.
_SHUTDOWN_TIMEOUT: Final = 1.0
_MAX_PORT: Final = 65_535


class WebhookServer:
    """A running webhook server (what ``Tracker.serve_webhooks`` returns).

    It stops when the tracker's ``async with`` block ends, or earlier with ``close()``.

    Attributes:
        host: The address it listens on.
        port: The port it is bound to (the free one picked when 0 was asked for).
        path: The path deliveries are POSTed to; ``path + "/"`` is answered too.
    """

    def __init__(self, runner: Any, host: str, port: int, path: str) -> None:
        self._runner: Any = runner
        self.host = host
        self.port = port
        self.path = path

    def __repr__(self) -> str:
        state = "closed" if self._runner is None else "serving"
        return f"WebhookServer({self.url!r}, {state})"

    @property
    def url(self) -> str:
        """The URL to give the sender, e.g. ``http://127.0.0.1:8088/webhooks``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @property
    def closed(self) -> bool:
        """Whether the server has stopped."""
        return self._runner is None

    async def close(self) -> None:
        """Stop listening; a delivery in progress gets a second to finish. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _check_path(path: object) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        msg = f"path: must be a URL path starting with '/', got {path!r}"
        raise InvalidParameterError(msg, param="path")
    return path.rstrip("/") or "/"


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= _MAX_PORT:
        msg = f"port: must be an int from 0 (any free port) to {_MAX_PORT}, got {port!r}"
        raise InvalidParameterError(msg, param="port")
    return port


async def start_webhook_server(
    receiver: WebhookReceiver, host: str, port: int, path: str
) -> WebhookServer:
    """Serve ``receiver`` at ``http://host:port/path`` on the running loop until closed.

    Raises:
        InvalidParameterError: A bad port or path (nothing is bound).
        OSError: The address cannot be bound (the port is taken, say).
    """
    port = _check_port(port)
    path = _check_path(path)
    # The one aiohttp import of tracking, inside the function (the receiver's own rule): the
    # receiver builds the app, this binds it.
    from aiohttp import web  # noqa: PLC0415, TID251

    if path == "/":
        app = receiver.aiohttp_app()
    else:
        app = web.Application()
        # Mounted at "path/", the receiver answers "path" too (WebhookReceiver.aiohttp_app).
        app.add_subapp(path + "/", receiver.aiohttp_app())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    return WebhookServer(runner, host, int(bound), path)
