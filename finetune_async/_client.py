"""``AsyncClient``: configuration, the transport, the retry loop and the client's life cycle."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Self, TypedDict, TypeVar, Unpack

import attrs
import orjson

from . import errors
from ._config import DEFAULT_TIMEOUT, Backoff, Timeout
from ._converter import converter
from ._sansio import (
    AttemptTimeout,
    DownloadSink,
    Request,
    Response,
    Transport,
    Upload,
    build_url,
    connection_error_verdict,
    deleted_on_retry,
    error_from_response,
    is_credential_header,
    is_redirect,
    new_idempotency_key,
    redirect_error,
    request_id_of,
    retry_delay,
    retry_verdict,
    with_range,
)
from ._version import __version__
from .resources import AsyncBatches, AsyncFiles, AsyncFineTuning, AsyncModels
from .webhooks import Webhooks

if TYPE_CHECKING:
    from types import TracebackType

    from ._transport import ClientSession
    from .resources._requester import Query

__all__ = ["AsyncClient", "ClientOptions"]

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
PORTKEY_BASE_URL: Final = "https://api.portkey.ai/v1"
DEFAULT_MAX_RETRIES: Final = 2
_FIRST_ERROR_STATUS: Final = 400
_FIRST_SERVER_ERROR_STATUS: Final = 500
DEFAULT_MAX_CONNECTIONS: Final = 1000
#: The most bytes a JSON answer may declare or inflate to (downloads have no cap).
DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 2**20
_NO_CONTENT: Final = 204
USER_AGENT: Final = (
    f"finetune-async/{__version__} (Python {sys.version_info.major}.{sys.version_info.minor})"
)


class ClientOptions(TypedDict, total=False):
    """The keywords every client constructor shares (``for_portkey`` and ``for_azure`` too)."""

    organization: str | None
    project: str | None
    timeout: float | Timeout | None
    max_retries: int
    max_connections: int
    default_headers: Mapping[str, str] | None
    default_query: Mapping[str, str] | None
    transport: Transport | None
    session: ClientSession | None
    backoff: Backoff
    max_response_size: int | None
    webhook_secret: str | Sequence[str] | None


def _masked(value: object) -> str:
    return "None" if value is None else "'***'"


def _masked_headers(headers: Mapping[str, str]) -> str:
    return repr({name: "***" if is_credential_header(name) else v for name, v in headers.items()})


def _masked_auth(auth: tuple[str, str] | None) -> str:
    return "None" if auth is None else repr((auth[0], "***"))


@attrs.frozen
class _Settings:
    """Everything a client sends with: fixed at construction, changed only by ``with_options``."""

    # Every credential is masked in the repr: settings end up in tracebacks and debug logs.
    api_key: str | None = attrs.field(repr=_masked)
    base_url: str
    organization: str | None
    project: str | None
    timeout: Timeout
    max_retries: int
    backoff: Backoff
    default_headers: Mapping[str, str] = attrs.field(repr=_masked_headers)
    default_query: Mapping[str, str]
    # How the key is sent: ("Authorization", "Bearer …"), ("api-key", …) for Azure, or None.
    auth_header: tuple[str, str] | None = attrs.field(repr=_masked_auth)
    # Headers a provider constructor adds (x-portkey-*); kept apart from the user's own.
    provider_headers: Mapping[str, str] = attrs.field(repr=_masked_headers)
    # The header names of `organization` and `project` (a gateway has its own).
    scope_headers: tuple[str, str]
    # Query a provider constructor adds (Azure's api-version); the user's default_query adds to it.
    provider_query: Mapping[str, str]
    max_response_size: int | None = DEFAULT_MAX_RESPONSE_SIZE
    # The secret(s) ``client.webhooks`` verifies with; None falls back on OPENAI_WEBHOOK_SECRET.
    webhook_secret: str | Sequence[str] | None = attrs.field(default=None, repr=_masked)

    @property
    def fixed_query(self) -> list[tuple[str, str]]:
        """Return the query pairs of every request (a user's value wins over a provider's)."""
        merged = {**self.provider_query, **self.default_query}
        return list(merged.items())

    def headers(self) -> dict[str, str]:
        """Return the headers sent with every request."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.auth_header is not None:
            headers[self.auth_header[0]] = self.auth_header[1]
        organization_header, project_header = self.scope_headers
        if self.organization:
            headers[organization_header] = self.organization
        if self.project:
            headers[project_header] = self.project
        headers.update(self.provider_headers)
        headers.update(self.default_headers)
        return headers


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise errors.InvalidParameterError(
            f"base_url: must be an http:// or https:// URL, got {base_url!r}", param="base_url"
        )
    return base_url.rstrip("/")


def _check_max_retries(max_retries: object) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise errors.InvalidParameterError(
            f"max_retries: must be an integer >= 0, got {max_retries!r}", param="max_retries"
        )
    return max_retries


def _check_max_response_size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.InvalidParameterError(
            f"max_response_size: must be a positive number of bytes or None, got {value!r}",
            param="max_response_size",
        )
    return value


def _timeout_of(value: object) -> Timeout:
    try:
        return Timeout.of(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise errors.InvalidParameterError(str(exc), param="timeout") from exc


class AsyncClient:
    """An asyncio client for the OpenAI-compatible fine-tuning API.

    Use it with ``async with`` or call ``await client.aclose()``; the aiohttp session is created
    on the running loop at the first request. Keyword arguments left out come from the environment
    (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``).

    Example:
        >>> async with AsyncClient() as client:  # doctest: +SKIP
        ...     job = await client.fine_tuning.jobs.retrieve("ftjob-abc")
    """

    fine_tuning: AsyncFineTuning
    batches: AsyncBatches
    files: AsyncFiles
    models: AsyncModels
    webhooks: Webhooks

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        """Create a client; nothing is connected until the first request.

        Args:
            api_key: The API key, sent as ``Authorization: Bearer``. Default: ``OPENAI_API_KEY``.
            base_url: Default ``OPENAI_BASE_URL`` or ``https://api.openai.com/v1``; a path in it is
                kept (``http://127.0.0.1:8080/v1``).
            **options: ``organization`` / ``project`` (sent as ``OpenAI-Organization`` /
                ``OpenAI-Project``), ``timeout`` (seconds or ``Timeout``), ``max_retries``
                (default 2), ``max_connections`` (pool size), ``default_headers``,
                ``default_query``, ``transport`` / ``session`` (an injected transport or
                ``aiohttp.ClientSession``, left open: whoever creates a session closes it) and
                ``backoff`` (the retry sleeps).

        Raises:
            InvalidParameterError: No API key anywhere, or a malformed setting.
        """
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key or not key.strip():
            # An empty key (OPENAI_API_KEY= in a .env file) would only earn a 401 from the server.
            raise errors.InvalidParameterError(
                "no API key: pass api_key=... or set the OPENAI_API_KEY environment variable"
                + ("" if key is None else " (the key given is empty)"),
                param="api_key",
            )
        organization = options.get("organization")
        project = options.get("project")
        settings = _settings_from(
            api_key=key,
            organization=organization
            if organization is not None
            else os.environ.get("OPENAI_ORG_ID"),
            project=project if project is not None else os.environ.get("OPENAI_PROJECT_ID"),
            base_url=base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            auth_header=("Authorization", f"Bearer {key}"),
            provider_headers={},
            options=options,
        )
        self._setup(
            settings, _transport_from(options), owns_transport=options.get("transport") is None
        )

    def _setup(self, settings: _Settings, transport: Transport, *, owns_transport: bool) -> None:
        self._settings = settings
        self._headers = _check_headers(settings.headers())
        # Worked out once: both are the same for every request of this client.
        self._fixed_query = settings.fixed_query
        timeout = settings.timeout
        cap = settings.max_response_size
        self._first_attempt = AttemptTimeout(
            connect=timeout.connect, read=timeout.read, total=timeout.total, max_body=cap
        )
        # A file's content, read whole on request: not a JSON answer, so not capped.
        self._first_content_attempt = attrs.evolve(self._first_attempt, max_body=None)
        # A download is bounded between reads, never as a whole: a big file still moving must
        # not be cut by the total timeout. Its error answers are JSON, so they keep the cap.
        self._download_attempt = AttemptTimeout(
            connect=timeout.connect,
            read=timeout.read if timeout.read is not None else timeout.total,
            total=None,
            max_body=cap,
        )
        self._capped_attempt: tuple[float, AttemptTimeout] | None = None
        self._transport = transport
        self._owns_transport = owns_transport
        self._closed = False
        self.fine_tuning = AsyncFineTuning(self)
        self.batches = AsyncBatches(self)
        self.files = AsyncFiles(self)
        self.models = AsyncModels(self)
        self.webhooks = Webhooks(settings.webhook_secret)

    @classmethod
    def _from_settings(
        cls, settings: _Settings, transport: Transport, *, owns_transport: bool
    ) -> Self:
        client = cls.__new__(cls)
        client._setup(settings, transport, owns_transport=owns_transport)  # noqa: SLF001 - own class
        return client

    # --- providers ---------------------------------------------------------------------------

    @classmethod
    def for_portkey(
        cls,
        *,
        api_key: str | None = None,
        virtual_key: str | None = None,
        provider: str | None = None,
        config: str | Mapping[str, Any] | None = None,
        custom_host: str | None = None,
        trace_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        base_url: str = PORTKEY_BASE_URL,
        provider_api_key: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> Self:
        """Create a client that talks through the Portkey AI gateway (hosted or self-hosted).

        Sends the ``x-portkey-*`` headers of docs/compat.md. ``provider_api_key`` goes to the
        provider as ``Authorization: Bearer``; the ``Idempotency-Key`` of POSTs is listed in
        ``x-portkey-forward-headers`` so that the gateway passes it upstream.

        Args:
            api_key: Portkey API key (``x-portkey-api-key``); default ``PORTKEY_API_KEY``. A
                self-hosted gateway needs none.
            virtual_key: A saved provider key (``x-portkey-virtual-key``); default
                ``PORTKEY_VIRTUAL_KEY``.
            provider: The provider slug (``x-portkey-provider``), e.g. ``"openai"``.
            config: A gateway config: a dict (sent as JSON) or a saved config id.
            custom_host: The provider's base URL, ``/v1`` included (``x-portkey-custom-host``).
            trace_id: ``x-portkey-trace-id``.
            metadata: ``x-portkey-metadata`` (sent as JSON).
            base_url: The gateway's URL.
            provider_api_key: The provider's own key, sent as ``Authorization: Bearer``.
            **options: The keywords of ``AsyncClient``.

        Raises:
            InvalidParameterError: None of ``virtual_key``, ``provider`` or ``config`` is given:
                the gateway would not know where to send the request.
        """
        key = api_key if api_key is not None else os.environ.get("PORTKEY_API_KEY")
        virtual = virtual_key if virtual_key is not None else os.environ.get("PORTKEY_VIRTUAL_KEY")
        if not (virtual or provider or config):
            raise errors.InvalidParameterError(
                "for_portkey needs virtual_key= (or PORTKEY_VIRTUAL_KEY), provider= or config=",
                param="virtual_key",
            )
        headers: dict[str, str] = {"x-portkey-forward-headers": "idempotency-key"}
        named = {
            "x-portkey-api-key": key,
            "x-portkey-virtual-key": virtual,
            "x-portkey-provider": provider,
            "x-portkey-custom-host": custom_host,
            "x-portkey-trace-id": trace_id,
        }
        headers.update({name: value for name, value in named.items() if value})
        if config is not None:
            headers["x-portkey-config"] = (
                config if isinstance(config, str) else orjson.dumps(config).decode()
            )
        if metadata is not None:
            headers["x-portkey-metadata"] = orjson.dumps(dict(metadata)).decode()
        settings = _settings_from(
            api_key=provider_api_key,
            organization=options.get("organization"),
            project=options.get("project"),
            # Through the gateway, the OpenAI organisation and project are x-portkey-* headers.
            scope_headers=("x-portkey-openai-organization", "x-portkey-openai-project"),
            base_url=base_url,
            auth_header=None
            if provider_api_key is None
            else ("Authorization", f"Bearer {provider_api_key}"),
            provider_headers=headers,
            options=options,
        )
        return cls._from_settings(
            settings, _transport_from(options), owns_transport=options.get("transport") is None
        )

    @classmethod
    def for_azure(
        cls,
        *,
        endpoint: str | None = None,
        api_key: str | None = None,
        api_version: str | None = None,
        azure_ad_token: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> Self:
        """Create a client for Azure OpenAI.

        Calls go to ``{endpoint}/openai`` with ``?api-version=`` and the ``api-key`` header (or
        ``Authorization: Bearer`` with an Entra ID token). An endpoint ending in ``/openai/v1``
        is the newer v1 API, which needs no api-version.

        Args:
            endpoint: ``https://{resource}.openai.azure.com``; default ``AZURE_OPENAI_ENDPOINT``.
            api_key: Default ``AZURE_OPENAI_API_KEY``.
            api_version: ``YYYY-MM-DD[-preview]``; default ``OPENAI_API_VERSION``.
            azure_ad_token: An Entra ID token, used instead of ``api_key``.
            **options: The keywords of ``AsyncClient``.

        Raises:
            InvalidParameterError: No endpoint, no credential, or no api-version where one is
                needed.
        """
        endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise errors.InvalidParameterError(
                "for_azure needs endpoint= or the AZURE_OPENAI_ENDPOINT environment variable",
                param="endpoint",
            )
        base = _check_base_url(endpoint)
        if not base.endswith(("/openai", "/openai/v1")):
            base += "/openai"
        version = api_version or os.environ.get("OPENAI_API_VERSION")
        if not version and not base.endswith("/v1"):
            raise errors.InvalidParameterError(
                "for_azure needs api_version= (or OPENAI_API_VERSION), e.g. '2025-04-01-preview'",
                param="api_version",
            )
        key = api_key or os.environ.get("AZURE_OPENAI_API_KEY")
        if azure_ad_token:
            auth: tuple[str, str] = ("Authorization", f"Bearer {azure_ad_token}")
        elif key:
            auth = ("api-key", key)
        else:
            raise errors.InvalidParameterError(
                "for_azure needs api_key= (or AZURE_OPENAI_API_KEY) or azure_ad_token=",
                param="api_key",
            )
        provider_query = {"api-version": version} if version else {}
        settings = _settings_from(
            api_key=key,
            organization=options.get("organization"),
            project=options.get("project"),
            base_url=base,
            auth_header=auth,
            provider_headers={},
            provider_query=provider_query,
            options=options,
        )
        return cls._from_settings(
            settings, _transport_from(options), owns_transport=options.get("transport") is None
        )

    # --- life cycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL every path is joined to."""
        return self._settings.base_url

    @property
    def timeout(self) -> Timeout:
        """The timeouts of every call."""
        return self._settings.timeout

    @property
    def max_retries(self) -> int:
        """How many times a failed call is retried."""
        return self._settings.max_retries

    @property
    def is_closed(self) -> bool:
        """Whether ``aclose`` was called."""
        return self._closed

    def with_options(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
    ) -> Self:
        """Return a client that shares this one's connection pool with some settings changed.

        Settings left as None keep their value. Closing the new client does not close the pool;
        closing this one does.
        """
        current = self._settings
        changes: dict[str, Any] = {}
        if api_key is not None:
            changes["api_key"] = api_key
            if current.auth_header is not None:
                name = current.auth_header[0]
                changes["auth_header"] = (
                    name,
                    f"Bearer {api_key}" if name == "Authorization" else api_key,
                )
        if base_url is not None:
            changes["base_url"] = _check_base_url(base_url)
        if organization is not None:
            changes["organization"] = organization
        if project is not None:
            changes["project"] = project
        if timeout is not None:
            changes["timeout"] = _timeout_of(timeout)
        if max_retries is not None:
            changes["max_retries"] = _check_max_retries(max_retries)
        if default_headers is not None:
            changes["default_headers"] = dict(default_headers)
        if default_query is not None:
            changes["default_query"] = dict(default_query)
        if backoff is not None:
            changes["backoff"] = backoff
        return self._from_settings(
            attrs.evolve(current, **changes), self._transport, owns_transport=False
        )

    async def __aenter__(self) -> Self:
        """Return the client itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool if this client created it; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._owns_transport:
            await self._transport.aclose()

    def __repr__(self) -> str:
        """Show where the client points, never its key."""
        return f"<{type(self).__name__} base_url={self._settings.base_url!r}>"

    # --- requests ----------------------------------------------------------------------------

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
        """Send one API call with retries and return its answer structured into ``into``.

        This is the ``Requester`` protocol the resources use; it is public for calls this SDK
        does not wrap yet. ``into=bytes`` returns the raw body; an ``Upload`` body is sent as a
        streamed multipart form.
        """
        request = self._build_request(method, path, query, body, headers)
        if into is bytes:
            response = await self._send(request, content=True)
            return response.body  # type: ignore[return-value]
        response = await self._send(request)
        return self._structure(request, response, into, empty)

    async def download(
        self, path: str, sink: DownloadSink, *, headers: Mapping[str, str] | None = None
    ) -> Mapping[str, str]:
        """GET ``path`` and stream the answer into ``sink``, resuming with ``Range`` on retries.

        The client's total timeout does not apply: each attempt is bounded by the connect
        timeout and by the read timeout between chunks (or by ``total`` when ``read`` is None),
        so a large download that keeps moving is never cut.

        Returns:
            The headers of the answer that completed the download.
        """
        request = self._build_request("GET", path, (), None, headers)
        return (await self._send(request, sink)).headers

    def _build_request(
        self, method: str, path: str, query: Query, body: object, extra: Mapping[str, str] | None
    ) -> Request:
        if self._fixed_query:
            query = [*query, *self._fixed_query]
        url = build_url(self._settings.base_url, path, query)
        headers = {**self._headers, **extra} if extra else self._headers
        payload: bytes | Upload | None = None
        if isinstance(body, Upload):
            payload = body  # aiohttp writes the multipart Content-Type with its boundary
        elif body is not None or method == "POST":
            # docs/compat.md: the Portkey gateway refuses a POST without it, even with no body.
            headers = {**headers, "Content-Type": "application/json"}
            payload = None if body is None else orjson.dumps(body)
        if method == "POST":
            # One key per logical call, kept by every retry of it.
            headers = {**headers, "Idempotency-Key": new_idempotency_key()}
        return Request(method=method, url=url, headers=headers, body=payload)

    async def poll(
        self, path: str, into: type[T], *, timeout: float | None = None
    ) -> tuple[T, Mapping[str, str]]:
        """GET ``path`` once, without retries, and return the record and the response headers.

        For schedulers that own their retries (``watch``): a retry here would be sent behind the
        scheduler's back, after a 429 that asked everyone to wait. ``timeout`` bounds this one
        attempt in place of the client's total timeout, so that a stalled poll frees its slot.
        """
        request = self._build_request("GET", path, (), None, None)
        response = await self._send(request, max_retries=0, attempt_total=timeout)
        return self._structure(request, response, into, None), response.headers

    async def _send(
        self,
        request: Request,
        sink: DownloadSink | None = None,
        *,
        max_retries: int | None = None,
        attempt_total: float | None = None,
        content: bool = False,
    ) -> Response:
        """Send ``request``, retrying as the sans-I/O rules say, within the total timeout.

        With a ``sink`` the answer is streamed into it, and a retry asks only for the bytes the
        sink does not hold yet. ``max_retries`` overrides the client's setting;
        ``attempt_total`` caps each attempt's total limit (a poll's own short bound);
        ``content`` reads a file's bytes, which ``max_response_size`` does not cap.
        """
        if self._closed:
            raise errors.FinetuneError("this client is closed; create a new one")
        settings = self._settings
        # A download is bounded between reads only (see `download`).
        total = None if sink is not None else settings.timeout.total
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt_timeout = self._first_limits(
            download=sink is not None, content=content, attempt_total=attempt_total
        )
        attempt = 0
        # Whether an attempt so far may have been carried out (a cut after sending, a 5xx).
        landed = False
        while True:
            failure: errors.APIError
            try:
                if sink is None:
                    response = await self._transport.send(request, attempt_timeout)
                else:
                    ranged = with_range(request, sink.offset)
                    response = await self._transport.stream(ranged, attempt_timeout, sink)
            except errors.APIConnectionError as exc:
                verdict = connection_error_verdict(request, exc)
                if verdict.outcome_unknown:
                    raise _outcome_unknown(exc, request) from exc
                failure, hint_headers = exc, None
                landed = landed or exc.may_have_reached_server
            else:
                outcome = _judged(request, response, landed=landed)
                if isinstance(outcome, Response):
                    return outcome
                failure, hint_headers = outcome, response.headers
                landed = landed or response.status >= _FIRST_SERVER_ERROR_STATUS
            if attempt >= (settings.max_retries if max_retries is None else max_retries):
                raise failure
            delay = retry_delay(attempt, hint_headers, settings.backoff)
            deadline = None if total is None else started + total
            if delay is None or (deadline is not None and loop.time() + delay >= deadline):
                # Waiting less than the server asked, or past our own deadline, is pointless.
                raise failure
            await asyncio.sleep(delay)
            attempt += 1
            attempt_timeout = self._retry_timeout(
                request, deadline, loop.time(), attempt_timeout, landed=landed
            )

    def _first_limits(
        self, *, download: bool, content: bool, attempt_total: float | None
    ) -> AttemptTimeout:
        """The first attempt's limits: the whole budget, worked out once per client."""
        if download:
            return self._download_attempt
        if content:
            return self._first_content_attempt
        if attempt_total is not None:
            return self._capped_first_attempt(attempt_total)
        return self._first_attempt

    def _capped_first_attempt(self, total: float) -> AttemptTimeout:
        """The first attempt's limits with ``total`` as the cap, kept for the next poll."""
        cached = self._capped_attempt
        if cached is not None and cached[0] == total:
            return cached[1]
        first = self._first_attempt
        capped = first if first.total is not None and first.total <= total else None
        limits = capped or attrs.evolve(first, total=total)
        # The same object each time lets the transport reuse its aiohttp timeout too.
        self._capped_attempt = (total, limits)
        return limits

    def _retry_timeout(
        self,
        request: Request,
        deadline: float | None,
        now: float,
        previous: AttemptTimeout,
        *,
        landed: bool,
    ) -> AttemptTimeout:
        """Return a retry's limits: the previous attempt's, within what is left of the total."""
        if deadline is None:
            return previous
        remaining = deadline - now
        if remaining <= 0:
            raise errors.APITimeoutError(
                f"{request.method} {request.url} did not complete within the total timeout "
                f"of {self._settings.timeout.total} s",
                method=request.method,
                url=request.url,
                # Only an attempt that may have been carried out makes the outcome unknown.
                outcome_unknown=landed and not request.is_safe,
            )
        if previous.total is not None and previous.total <= remaining:
            return previous
        return attrs.evolve(previous, total=remaining)

    def _structure(self, request: Request, response: Response, into: type[T], empty: T | None) -> T:
        if not response.body and empty is not None:
            return empty
        try:
            data = orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise self._invalid(request, response, f"the answer is not JSON ({exc})") from exc
        try:
            return converter.structure(data, into)
        # The single structuring call site (docs/architecture.md rule 7): cattrs raises many types
        # (ClassValidationError, TypeError, KeyError, ValueError...), none of which may escape.
        except Exception as exc:
            raise self._invalid(
                request, response, f"the answer does not fit {_type_name(into)}: {exc!r}"
            ) from exc

    @staticmethod
    def _invalid(
        request: Request, response: Response, why: str
    ) -> errors.APIResponseValidationError:
        text = response.body[:1000].decode("utf-8", errors="replace")
        return errors.APIResponseValidationError(
            f"{request.method} {request.url}: {why}",
            status_code=response.status,
            request_id=request_id_of(response.headers),
            body=text,
            method=request.method,
            url=request.url,
        )


def _judged(
    request: Request, response: Response, *, landed: bool
) -> Response | errors.APIStatusError:
    """Return the answer to give back, or the error worth a retry; raise any other error.

    Args:
        request: What was sent.
        response: What this attempt got.
        landed: Whether an earlier attempt may have been carried out.
    """
    status = response.status
    if status < _FIRST_ERROR_STATUS:
        if is_redirect(status):
            raise redirect_error(response, method=request.method, url=request.url)
        return response
    if deleted_on_retry(request, status, earlier_may_have_landed=landed):
        # An earlier attempt did delete it: report the delete, not a NotFound.
        return Response(status=_NO_CONTENT, headers=response.headers, body=b"")
    verdict = retry_verdict(request, status, response.headers)
    failure = error_from_response(
        response, method=request.method, url=request.url, outcome_unknown=verdict.outcome_unknown
    )
    if not verdict.retry:
        raise failure
    return failure


def _type_name(into: object) -> str:
    return getattr(into, "__name__", None) or repr(into)


def _outcome_unknown(exc: errors.APIConnectionError, request: Request) -> errors.APIConnectionError:
    """Re-raise a connection failure of an unrepeatable request, saying its outcome is unknown."""
    return type(exc)(
        f"{exc.message}; {errors.OUTCOME_UNKNOWN_HINT}",
        method=request.method,
        url=request.url,
        may_have_reached_server=True,
        outcome_unknown=True,
    )


def _settings_from(
    *,
    api_key: str | None,
    organization: str | None,
    project: str | None,
    base_url: str,
    auth_header: tuple[str, str] | None,
    provider_headers: Mapping[str, str],
    options: ClientOptions,
    provider_query: Mapping[str, str] | None = None,
    scope_headers: tuple[str, str] = ("OpenAI-Organization", "OpenAI-Project"),
) -> _Settings:
    return _Settings(
        api_key=api_key,
        base_url=_check_base_url(base_url),
        organization=organization,
        project=project,
        timeout=_timeout_of(options.get("timeout", DEFAULT_TIMEOUT)),
        max_retries=_check_max_retries(options.get("max_retries", DEFAULT_MAX_RETRIES)),
        backoff=options.get("backoff", Backoff()),
        max_response_size=_check_max_response_size(
            options.get("max_response_size", DEFAULT_MAX_RESPONSE_SIZE)
        ),
        webhook_secret=options.get("webhook_secret"),
        default_headers=dict(options.get("default_headers") or {}),
        default_query=dict(options.get("default_query") or {}),
        auth_header=auth_header,
        provider_headers=dict(provider_headers),
        provider_query=dict(provider_query or {}),
        scope_headers=scope_headers,
    )


def _check_headers(headers: Mapping[Any, Any]) -> dict[str, str]:
    """Refuse header names or values that would corrupt the request (a pasted key's newline)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise errors.InvalidParameterError(
                f"headers: names and values must be strings, got {name!r}: {value!r}",
                param="default_headers",
            )
        if any(c in name + value for c in "\r\n\0"):
            raise errors.InvalidParameterError(
                f"headers: {name!r} contains a line break or NUL (a pasted key?)",
                param="default_headers",
            )
    return dict(headers)


def _transport_from(options: ClientOptions) -> Transport:
    transport = options.get("transport")
    session = options.get("session")
    if transport is not None and session is not None:
        raise errors.InvalidParameterError(
            "pass transport= or session=, not both", param="transport"
        )
    if transport is not None:
        return transport
    max_connections: object = options.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    if (
        isinstance(max_connections, bool)
        or not isinstance(max_connections, int)
        or max_connections < 1
    ):
        raise errors.InvalidParameterError(
            f"max_connections: must be a positive integer, got {max_connections!r}",
            param="max_connections",
        )
    # aiohttp is imported with the first client, not with the package: `import finetune_async`
    # stays cheap for code that only reads files (finetune_async.data, `files validate`).
    from ._transport import AiohttpTransport  # noqa: PLC0415

    return AiohttpTransport(session=session, max_connections=max_connections)
