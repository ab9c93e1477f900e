"""The ``finetune-async`` command line (also ``python -m finetune_async``).

``jobs create|list|get|cancel|pause|resume|events|checkpoints|wait|watch|metrics``,
``files upload|list|get|delete|download|validate`` (``validate`` is local: no key, no request),
``batches create|list|get|cancel|wait|results``, ``webhooks listen`` (a local receiver that
prints every verified event), ``track add|run|status`` (a tracker that survives restarts, as a
sidecar; ``add`` and ``status`` need no key), ``emulator`` (``--webhook-url`` makes it push) and
``demo``.
Tables and live progress on a terminal; ``--json`` (or a pipe) gives one JSON object per line.
The connection options go before or after the subcommand. Errors print one line and exit
non-zero: 1 for an API or connection error (with the request id), 2 for bad input (usage errors,
bad values, a missing or empty key, a training file ``--validate`` refused), 130 for Ctrl-C. A
reader that stops early (``| head``) ends the command quietly, with exit 0, as ``git`` and ``jq``
do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import re
import signal
import sys
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from .._version import __version__
from ..data import TRAINING_METHODS
from ..emulator import Emulator, Faults, WebhookEndpoint
from ..emulator._webhooks import new_secret
from ..errors import FinetuneError, InvalidParameterError, NotFoundError
from ._args import (
    fraction,
    hyperparameter,
    non_negative_float,
    port,
    positive_float,
    positive_int,
)
from ._commands import COMMANDS, LOCAL_COMMANDS
from ._config import add_client_arguments, fill_client_defaults, given_client_options, make_client
from ._demo import run_demo
from ._output import Output
from ._track import CLIENT_ACTIONS, add_track_parser, run_track
from ._webhooks import listen, webhook_secrets

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

#: The commands that talk to an API, and so take the connection options.
API_GROUPS: Final = ("jobs", "files", "batches")


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", default=None, help="one JSON object per line"
    )


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    """Add an API command: its own options plus the connection and output ones."""
    parser = group.add_parser(name, help=text)
    add_client_arguments(parser)
    _add_output(parser)
    return parser


def _poll_interval(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--poll-interval",
        type=positive_float,
        default=default,
        metavar="SECONDS",
        help=f"seconds between polls (default {default:g})",
    )


def _jobs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser("jobs", help="fine-tuning jobs").add_subparsers(
        dest="action", required=True
    )

    sub = functools.partial(_command, jobs)
    create = sub("create", "create a fine-tuning job")
    create.add_argument("--model", required=True)
    create.add_argument("--training-file", required=True, help="id of an uploaded fine-tune file")
    create.add_argument("--validation-file")
    create.add_argument("--method", choices=("supervised", "dpo", "reinforcement"))
    create.add_argument("--n-epochs", type=hyperparameter, help='"auto" or 1-50')
    create.add_argument("--batch-size", type=hyperparameter, help='"auto" or 1-256')
    create.add_argument("--learning-rate-multiplier", type=hyperparameter, help='"auto" or > 0')
    create.add_argument("--beta", type=hyperparameter, help='DPO beta: "auto" or (0, 2]')
    create.add_argument("--suffix", help="up to 64 characters added to the model name")
    create.add_argument("--seed", type=int)
    create.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    listing = sub("list", "list jobs, newest first")
    listing.add_argument("--limit", type=positive_int, help="page size")
    listing.add_argument("--max", type=positive_int, help="stop after this many")
    listing.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="filter")
    for name, text in (
        ("get", "show a job"),
        ("cancel", "cancel a job"),
        ("pause", "pause a job"),
        ("resume", "resume a job"),
        ("checkpoints", "list a job's checkpoints"),
    ):
        sub(name, text).add_argument("job_id")
    events = sub("events", "show a job's events (oldest first)")
    events.add_argument("job_id")
    events.add_argument(
        "--limit",
        type=positive_int,
        default=20,
        help="how many of the newest events (default 20; read 100 a page)",
    )
    events.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events, like tail -f"
    )
    _poll_interval(events, 5.0)
    wait = sub("wait", "follow a job live until it ends; exit 0 if it succeeded")
    wait.add_argument("job_id")
    _poll_interval(wait, 10.0)
    wait.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", help="give up after this many seconds"
    )
    watch = sub("watch", "follow many jobs live until they all end")
    watch.add_argument("job_ids", nargs="+")
    _poll_interval(watch, 10.0)
    watch.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=32,
        help="most polls in flight at once (default 32)",
    )
    watch.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", help="give up after this many seconds"
    )
    metrics = sub("metrics", "show a finished job's training metrics, one row per step")
    metrics.add_argument("job_id")
    metrics.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the loss curves to this PNG (needs the plot extra: matplotlib)",
    )


def _files(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    files = commands.add_parser("files", help="files").add_subparsers(dest="action", required=True)

    sub = functools.partial(_command, files)
    upload = sub("upload", "upload a file (streamed)")
    upload.add_argument("path")
    upload.add_argument(
        "--purpose", required=True, help="fine-tune, batch, assistants, vision, user_data, evals"
    )
    upload.add_argument(
        "--validate",
        action="store_true",
        help="check the training data first and upload nothing if it has errors (fine-tune)",
    )
    upload.add_argument(
        "--method",
        choices=TRAINING_METHODS,
        default="supervised",
        help="the format --validate checks",
    )
    listing = sub("list", "list files")
    listing.add_argument("--purpose")
    listing.add_argument("--limit", type=positive_int, help="page size")
    listing.add_argument("--max", type=positive_int, help="stop after this many")
    sub("get", "show a file").add_argument("file_id")
    sub("delete", "delete a file").add_argument("file_id")
    download = sub("download", "download a file's contents (streamed)")
    download.add_argument("file_id")
    download.add_argument("path", help="a file name, or a folder")
    # Local: no connection options, so no key is needed.
    validate = files.add_parser(
        "validate", help="check a JSONL training file locally: every problem, with its line"
    )
    validate.add_argument("path")
    validate.add_argument(
        "--method", choices=TRAINING_METHODS, default="supervised", help="the fine-tuning method"
    )
    _add_output(validate)


def _batches(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batches = commands.add_parser("batches", help="batches").add_subparsers(
        dest="action", required=True
    )

    sub = functools.partial(_command, batches)
    create = sub("create", "create a batch from an uploaded file")
    create.add_argument("--input-file-id", required=True)
    create.add_argument("--endpoint", required=True, help="e.g. /v1/chat/completions")
    create.add_argument("--completion-window", default="24h")
    create.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    listing = sub("list", "list batches")
    listing.add_argument("--limit", type=positive_int, help="page size")
    listing.add_argument("--max", type=positive_int, help="stop after this many")
    sub("get", "show a batch").add_argument("batch_id")
    sub("cancel", "cancel a batch").add_argument("batch_id")
    wait = sub("wait", "wait for a batch to end; exit 0 if it completed")
    wait.add_argument("batch_id")
    _poll_interval(wait, 10.0)
    wait.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", help="give up after this many seconds"
    )
    sub("results", "show an ended batch's results, one per request").add_argument("batch_id")


def _emulator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emu = commands.add_parser(
        "emulator", help="run the local OpenAI-compatible emulator until Ctrl-C"
    )
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emu.add_argument(
        "--port", type=port, default=8080, help="port (default 8080; 0 picks a free one)"
    )
    emu.add_argument(
        "--speed",
        type=non_negative_float,
        default=1.0,
        help="clock speed-up (default 1.0; 0 stops the clock)",
    )
    emu.add_argument("--seed", type=int, default=None, help="seed for repeatable ids and faults")
    # Its own dest: the connection option --api-key (given before the subcommand) is the
    # client's key, which the emulator does not take.
    emu.add_argument(
        "--api-key", dest="accept_api_key", default=None, help="accept only this Bearer key"
    )
    emu.add_argument(
        "--rate-429", type=fraction, default=0.0, help="fraction of requests answered 429"
    )
    emu.add_argument("--rate-5xx", type=fraction, default=0.0, help="fraction answered 500")
    emu.add_argument(
        "--rate-drop", type=fraction, default=0.0, help="fraction of connections dropped"
    )
    emu.add_argument(
        "--latency", type=non_negative_float, default=0.0, help="extra seconds before each answer"
    )
    emu.add_argument(
        "--retry-after",
        type=non_negative_float,
        default=1.0,
        help="Retry-After of injected 429s (default 1)",
    )
    emu.add_argument(
        "--rate-limit", type=positive_float, default=None, help="requests per second before 429"
    )
    emu.add_argument(
        "--webhook-url",
        action="append",
        metavar="URL",
        help="POST a signed webhook here when a job or batch ends (repeatable)",
    )
    emu.add_argument(
        "--webhook-secret",
        action="append",
        metavar="whsec_…",
        help="sign the webhooks with this secret (repeatable, for a rotation; default "
        "$OPENAI_WEBHOOK_SECRET, else one is generated and printed)",
    )
    emu.add_argument(
        "--webhook-drop-rate", type=fraction, default=0.0, help="fraction of webhooks never sent"
    )
    emu.add_argument(
        "--webhook-duplicate-rate", type=fraction, default=0.0, help="fraction sent twice"
    )
    emu.add_argument(
        "--webhook-delay",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="delay each webhook by a random 0 to SECONDS",
    )


def _webhooks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = commands.add_parser("webhooks", help="webhooks").add_subparsers(
        dest="action", required=True
    )
    listen = hooks.add_parser(
        "listen", help="receive webhooks locally and print every verified event, until Ctrl-C"
    )
    listen.add_argument("--port", type=port, required=True, help="port (0 picks a free one)")
    listen.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    listen.add_argument(
        "--secret",
        action="append",
        metavar="whsec_…",
        help="the endpoint's secret (repeatable, for a rotation; default $OPENAI_WEBHOOK_SECRET)",
    )
    _add_output(listen)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-async",
        description="The finetune_async command line.",
        # No abbreviations at this level: it sees every argument, and "--port" of `emulator`
        # would be an ambiguous prefix of the --portkey-* options.
        allow_abbrev=False,
        epilog=(
            "The connection options go before or after the subcommand: "
            "finetune-async --base-url URL jobs list. "
            "Exit codes: 0 done, 1 an API or connection error or a job or batch that did not "
            "succeed, 2 bad input or a missing key, 130 interrupted."
        ),
    )
    parser.add_argument("--version", action="version", version=f"finetune-async {__version__}")
    add_client_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    _jobs(commands)
    _files(commands)
    _batches(commands)
    _emulator(commands)
    _webhooks(commands)
    add_track_parser(commands, _add_output)
    demo = commands.add_parser(
        "demo", help="a whole workflow on an embedded emulator: no key, no network"
    )
    demo.add_argument(
        "--speed",
        type=positive_float,
        default=60.0,
        help="emulator clock speed-up (default 60)",
    )
    _add_output(demo)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; a connection option on a command that takes none is an error."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in API_GROUPS and (args.command, args.action) in COMMANDS:
        fill_client_defaults(args)
        return args
    if args.command == "track" and args.action in CLIENT_ACTIONS:
        fill_client_defaults(args)
        return args
    given = given_client_options(args)
    if given:
        where = f"{args.command} {args.action}" if hasattr(args, "action") else args.command
        parser.error(
            f"{given[0]} is a connection option of the API commands (jobs, files, batches,"
            f" track run); `{where}` takes none"
        )
    if args.command == "emulator" and args.webhook_secret and not args.webhook_url:
        parser.error("--webhook-secret needs --webhook-url (where to send the webhooks)")
    return args


async def _run_emulator(args: argparse.Namespace) -> int:
    faults = Faults(
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_drop=args.rate_drop,
        latency=args.latency,
        retry_after=args.retry_after,
        rate_limit=args.rate_limit,
        webhook_drop_rate=args.webhook_drop_rate,
        webhook_duplicate_rate=args.webhook_duplicate_rate,
        webhook_delay=args.webhook_delay,
    )
    endpoints, generated = _webhook_endpoints(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    emulator = Emulator(
        host=args.host,
        port=args.port,
        speed=args.speed,
        seed=args.seed,
        api_key=args.accept_api_key,
        faults=faults,
        webhooks=endpoints,
    )
    async with emulator:
        print(f"finetune-async emulator listening on {emulator.url}", flush=True)
        for endpoint in endpoints:
            print(f"finetune-async emulator sends webhooks to {endpoint.url}", flush=True)
        if generated is not None:
            # Shown once, as OpenAI shows a new endpoint's secret: the receiver needs it.
            print(
                f"finetune-async emulator signs them with {generated} "
                "(generated; pass it to `finetune-async webhooks listen --secret`)",
                flush=True,
            )
        await stop.wait()
    return 0


def _webhook_endpoints(args: argparse.Namespace) -> tuple[list[WebhookEndpoint], str | None]:
    """The endpoints of ``--webhook-url``, and the secret generated for them (None if given)."""
    if not args.webhook_url:
        return [], None
    secrets = webhook_secrets(args.webhook_secret)
    generated = None
    if secrets is None:
        # One secret for every URL, so that one listener command takes them all.
        generated = new_secret()
        secrets = [generated]
    endpoints = []
    for url in args.webhook_url:
        try:
            endpoints.append(WebhookEndpoint(url, secrets))
        except InvalidParameterError as exc:
            flag = "--webhook-url" if exc.param == "url" else "--webhook-secret"
            name = str(exc.param)
            raise InvalidParameterError(
                flag + str(exc).removeprefix(name), param=exc.param
            ) from None
    return endpoints, generated


async def _run_api_command(args: argparse.Namespace, out: Output) -> int:
    handler = COMMANDS[(args.command, args.action)]
    async with make_client(args) as client:
        try:
            return await handler(client, args, out)
        except NotFoundError as exc:
            hint = _base_url_hint(
                exc, client.base_url, azure=bool(args.azure or args.azure_endpoint)
            )
            if hint is None:
                raise
            raise NotFoundError(
                f"{exc.message}; {hint}",
                status_code=exc.status_code,
                request_id=exc.request_id,
                headers=exc.headers,
                body=exc.body,
                error=exc.error,
                method=exc.method,
                url=exc.url,
            ) from exc


def _base_url_hint(exc: NotFoundError, base_url: str, *, azure: bool) -> str | None:
    """``is the base URL ... missing /v1?`` for a 404 that looks like a wrong path, else None.

    A wrong path gets a 404 that is not an OpenAI error object (a proxy's or a web server's
    page), or OpenAI's own "Invalid URL (GET /...)". Azure's base ends in /openai: no hint there.
    """
    if azure or urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        return None
    body = exc.body
    openai_error = isinstance(body, dict) and isinstance(body.get("error"), dict)
    if openai_error and not str(exc.message).startswith("Invalid URL"):
        return None
    return f"is the base URL {base_url} missing /v1?"


def _fail(message: str, code: int) -> int:
    print(f"finetune-async: error: {message}", file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "emulator":
        return asyncio.run(_run_emulator(args))
    out = Output(json_mode=args.json)
    if args.command == "webhooks":
        return asyncio.run(listen(args, out))
    if args.command == "track":
        return run_track(args, out)
    if args.command == "demo":
        return asyncio.run(run_demo(out, speed=args.speed))
    local = LOCAL_COMMANDS.get((args.command, args.action))
    if local is not None:
        return local(args, out)
    return asyncio.run(_run_api_command(args, out))


#: ``method.supervised.hyperparameters.n_epochs`` -> ``n_epochs``; ``metadata[k]`` -> ``metadata``.
_PARAM_PARTS: Final = re.compile(r"[.\[\]]")
#: Parameters the commands take as positional arguments, named as in ``--help``.
_POSITIONALS: Final = frozenset({"job_id", "job_ids", "file_id", "batch_id", "path"})


def _in_flags(exc: InvalidParameterError, args: argparse.Namespace) -> str:
    """The client's message about a parameter, naming the flag typed instead of the keyword.

    ``method.supervised.hyperparameters.n_epochs: must be >= 1...`` becomes ``--n-epochs: must be
    >= 1...``: the parameter's own name, or its first part, is looked up among the options of
    the command that ran.
    """
    message, param = str(exc), exc.param
    if not param or not message.startswith(f"{param}:"):
        return message
    parts = [part for part in _PARAM_PARTS.split(param) if part]
    for name in (param, parts[-1], parts[0]) if parts else (param,):
        if name in _POSITIONALS or not hasattr(args, name):
            continue
        flag = "--" + name.replace("_", "-")
        return flag + message[len(param) :]
    return message


def _silence_stdout() -> None:
    """Point standard output at /dev/null: the reader is gone, and the flush at exit must not fail.

    As the ``signal`` module's documentation advises for SIGPIPE; a stream without a file
    descriptor (a test's capture) is left alone.
    """
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Exit codes: 0 done (also when the reader of a pipe stopped early), 1 an API or connection
    error (one line, with the request id), a job or batch that did not succeed, or a training
    file with errors (``files validate``), 2 bad input (a usage error, a bad value, a missing or
    empty key, a file ``files upload --validate`` refused), 130 interrupted (Ctrl-C).
    """
    args = _parse(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # `finetune-async jobs list | head`: the reader has what it wanted. Stop quietly, as gh,
        # git and jq do, instead of "[Errno 32] Broken pipe" and exit 1.
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except InvalidParameterError as exc:
        # Bad input is the caller's to fix: the same code as argparse's usage errors.
        return _fail(_in_flags(exc, args), 2)
    except (FinetuneError, OSError, ValueError) as exc:
        return _fail(str(exc), 1)
