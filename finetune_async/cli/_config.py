"""Client configuration for the command line: the clients' keywords as flags, then environment.

Flags win over the environment, which the client constructors read as usual (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``, ``PORTKEY_API_KEY``,
``PORTKEY_VIRTUAL_KEY``, ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``,
``OPENAI_API_VERSION``). ``--portkey-*`` options select the Portkey gateway, ``--azure-*`` ones
Azure OpenAI.

The options are accepted before the subcommand (``finetune-async --base-url URL jobs list``) and
after it. Both parsers declare them with ``argparse.SUPPRESS`` as the default, so an option is
in the namespace only when typed: argparse copies every default of a subcommand's parser over
the namespace, which would otherwise reset a value given before the subcommand to None.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Final

import orjson

from .._client import AsyncClient
from .._config import Timeout
from ..errors import InvalidParameterError
from ._args import non_negative_int, positive_float

__all__ = [
    "CONNECTION_OPTIONS",
    "add_client_arguments",
    "fill_client_defaults",
    "given_client_options",
    "make_client",
]

_CONNECTION: Final = "connection (flags win over the environment)"
_PORTKEY: Final = "Portkey AI gateway"
_AZURE: Final = "Azure OpenAI"

#: (group, flag, argparse keywords) of every connection option, in the order of ``--help``.
CONNECTION_OPTIONS: Final[tuple[tuple[str, str, dict[str, Any]], ...]] = (
    (_CONNECTION, "--api-key", {"help": "API key (default: $OPENAI_API_KEY)"}),
    (_CONNECTION, "--base-url", {"help": "API base URL, /v1 included (default: $OPENAI_BASE_URL)"}),
    (_CONNECTION, "--organization", {"help": "OpenAI organization (default: $OPENAI_ORG_ID)"}),
    (_CONNECTION, "--project", {"help": "OpenAI project (default: $OPENAI_PROJECT_ID)"}),
    (
        _CONNECTION,
        "--request-timeout",
        {
            "type": positive_float,
            "metavar": "SECONDS",
            "help": "seconds per API call, retries included (default 600)",
        },
    ),
    (
        _CONNECTION,
        "--max-retries",
        {"type": non_negative_int, "metavar": "N", "help": "retries of a failed call (default 2)"},
    ),
    (_PORTKEY, "--portkey", {"action": "store_true", "help": "go through the Portkey gateway"}),
    (_PORTKEY, "--portkey-api-key", {"help": "default: $PORTKEY_API_KEY"}),
    (_PORTKEY, "--portkey-virtual-key", {"help": "default: $PORTKEY_VIRTUAL_KEY"}),
    (_PORTKEY, "--portkey-provider", {"help": "provider slug, e.g. openai"}),
    (_PORTKEY, "--portkey-config", {"help": "gateway config: JSON or a saved config id"}),
    (_PORTKEY, "--portkey-custom-host", {"help": "the provider's base URL, /v1 included"}),
    (_PORTKEY, "--portkey-base-url", {"help": "the gateway's URL (default: hosted Portkey)"}),
    (_PORTKEY, "--provider-api-key", {"help": "the provider's key, sent as Bearer"}),
    (_AZURE, "--azure", {"action": "store_true", "help": "talk to Azure OpenAI"}),
    (_AZURE, "--azure-endpoint", {"help": "default: $AZURE_OPENAI_ENDPOINT"}),
    (_AZURE, "--azure-api-key", {"help": "default: $AZURE_OPENAI_API_KEY"}),
    (_AZURE, "--azure-api-version", {"help": "default: $OPENAI_API_VERSION"}),
)


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the connection options (absent from the namespace unless typed)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for title, flag, options in CONNECTION_OPTIONS:
        group = groups.get(title)
        if group is None:
            group = groups[title] = parser.add_argument_group(title)
        group.add_argument(flag, default=argparse.SUPPRESS, **options)


def given_client_options(args: argparse.Namespace) -> list[str]:
    """The connection flags typed on the command line."""
    return [flag for _, flag, _ in CONNECTION_OPTIONS if hasattr(args, _dest(flag))]


def fill_client_defaults(args: argparse.Namespace) -> None:
    """Give every connection option not typed its default (None, or False for a switch)."""
    for _, flag, options in CONNECTION_OPTIONS:
        dest = _dest(flag)
        if not hasattr(args, dest):
            setattr(args, dest, False if options.get("action") == "store_true" else None)


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


#: The flag (and variable) to give instead of each keyword a provider constructor asks for.
_PORTKEY_NEEDS: Final = (
    "--portkey needs --portkey-virtual-key (or PORTKEY_VIRTUAL_KEY), --portkey-provider"
    " or --portkey-config"
)
_AZURE_NEEDS: Final = {
    "endpoint": "--azure needs --azure-endpoint (or AZURE_OPENAI_ENDPOINT)",
    "api_version": (
        "--azure needs --azure-api-version (or OPENAI_API_VERSION), e.g. 2025-04-01-preview"
    ),
    "api_key": "--azure needs --azure-api-key (or AZURE_OPENAI_API_KEY)",
}


def _portkey_client(args: argparse.Namespace, options: dict[str, Any]) -> AsyncClient:
    config: Any = args.portkey_config
    if config and config.lstrip().startswith("{"):
        try:
            config = orjson.loads(config)
        except orjson.JSONDecodeError as exc:
            msg = f"--portkey-config is not valid JSON: {exc}"
            raise InvalidParameterError(msg, param="portkey_config") from exc
    try:
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
    except InvalidParameterError as exc:
        if exc.param == "virtual_key":
            raise InvalidParameterError(_PORTKEY_NEEDS, param=exc.param) from exc
        raise


def _azure_client(args: argparse.Namespace, options: dict[str, Any]) -> AsyncClient:
    try:
        return AsyncClient.for_azure(
            endpoint=args.azure_endpoint,
            api_key=args.azure_api_key,
            api_version=args.azure_api_version,
            **options,
        )
    except InvalidParameterError as exc:
        message = _AZURE_NEEDS.get(exc.param or "")
        if message is not None:
            raise InvalidParameterError(message, param=exc.param) from exc
        raise


def make_client(args: argparse.Namespace) -> AsyncClient:
    """Build the client the options describe.

    Raises:
        InvalidParameterError: A missing or empty key, or a malformed option, naming the flag and
            the variable to set.
    """
    fill_client_defaults(args)  # a namespace from a parser of its own may lack some
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
        return _portkey_client(args, options)
    if args.azure or args.azure_endpoint or args.azure_api_version or args.azure_api_key:
        return _azure_client(args, options)
    if args.api_key is not None:
        key, source = args.api_key, "--api-key"
    else:
        key, source = os.environ.get("OPENAI_API_KEY"), "OPENAI_API_KEY"
    if key is None or not key.strip():
        # An empty key ("--api-key ''", or OPENAI_API_KEY= in a script) is a mistake to report
        # here, naming the flag, rather than a 401 from the server.
        empty = "" if key is None else f"{source} is empty; "
        msg = f"no API key: {empty}pass --api-key KEY or set OPENAI_API_KEY"
        raise InvalidParameterError(msg, param="api_key")
    return AsyncClient(api_key=key, base_url=args.base_url, **options)
