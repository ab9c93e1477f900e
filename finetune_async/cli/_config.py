"""Client configuration for the command line: the clients' keywords as flags, then environment.

Flags win over the environment, which the client constructors read as usual (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``, ``PORTKEY_API_KEY``,
``PORTKEY_VIRTUAL_KEY``, ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``,
``OPENAI_API_VERSION``). ``--portkey-*`` options select the Portkey gateway, ``--azure-*`` ones
Azure OpenAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .._client import AsyncClient
from .._config import Timeout
from ..errors import InvalidParameterError

if TYPE_CHECKING:
    import argparse

__all__ = ["add_client_arguments", "make_client"]


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the connection options shared by every API command."""
    group = parser.add_argument_group("connection (flags win over the environment)")
    group.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    group.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI)")
    group.add_argument("--organization", help="OpenAI organization (default: $OPENAI_ORG_ID)")
    group.add_argument("--project", help="OpenAI project (default: $OPENAI_PROJECT_ID)")
    group.add_argument(
        "--request-timeout", type=float, help="seconds per API call, retries included (default 600)"
    )
    group.add_argument("--max-retries", type=int, help="retries of a failed call (default 2)")
    portkey = parser.add_argument_group("Portkey AI gateway")
    portkey.add_argument("--portkey", action="store_true", help="go through the Portkey gateway")
    portkey.add_argument("--portkey-api-key", help="default: $PORTKEY_API_KEY")
    portkey.add_argument("--portkey-virtual-key", help="default: $PORTKEY_VIRTUAL_KEY")
    portkey.add_argument("--portkey-provider", help="provider slug, e.g. openai")
    portkey.add_argument("--portkey-config", help="gateway config: JSON or a saved config id")
    portkey.add_argument("--portkey-custom-host", help="the provider's base URL, /v1 included")
    portkey.add_argument("--portkey-base-url", help="the gateway's URL (default: hosted Portkey)")
    portkey.add_argument("--provider-api-key", help="the provider's key, sent as Bearer")
    azure = parser.add_argument_group("Azure OpenAI")
    azure.add_argument("--azure", action="store_true", help="talk to Azure OpenAI")
    azure.add_argument("--azure-endpoint", help="default: $AZURE_OPENAI_ENDPOINT")
    azure.add_argument("--azure-api-key", help="default: $AZURE_OPENAI_API_KEY")
    azure.add_argument("--azure-api-version", help="default: $OPENAI_API_VERSION")


def _common(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.request_timeout is not None:
        options["timeout"] = Timeout.of(args.request_timeout)
    if args.max_retries is not None:
        options["max_retries"] = args.max_retries
    if args.organization:
        options["organization"] = args.organization
    if args.project:
        options["project"] = args.project
    return options


def make_client(args: argparse.Namespace) -> AsyncClient:
    """Build the client the options describe.

    Raises:
        InvalidParameterError: A missing key or a malformed option, with the variable to set.
    """
    options = _common(args)
    portkey = [
        args.portkey_api_key,
        args.portkey_virtual_key,
        args.portkey_provider,
        args.portkey_config,
        args.portkey_custom_host,
        args.portkey_base_url,
    ]
    if args.portkey or any(portkey):
        config: Any = args.portkey_config
        if config and config.lstrip().startswith("{"):
            try:
                config = orjson.loads(config)
            except orjson.JSONDecodeError as exc:
                msg = f"--portkey-config is not valid JSON: {exc}"
                raise InvalidParameterError(msg, param="portkey_config") from exc
        return AsyncClient.for_portkey(
            api_key=args.portkey_api_key,
            virtual_key=args.portkey_virtual_key,
            provider=args.portkey_provider,
            config=config,
            custom_host=args.portkey_custom_host,
            base_url=args.portkey_base_url or args.base_url or "https://api.portkey.ai/v1",
            provider_api_key=args.provider_api_key or args.api_key,
            **options,
        )
    if args.azure or args.azure_endpoint or args.azure_api_version or args.azure_api_key:
        return AsyncClient.for_azure(
            endpoint=args.azure_endpoint,
            api_key=args.azure_api_key,
            api_version=args.azure_api_version,
            **options,
        )
    return AsyncClient(api_key=args.api_key, base_url=args.base_url, **options)
