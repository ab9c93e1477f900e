"""The ``finetune-async`` command line (for now: ``finetune-async emulator``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from .._version import __version__
from ..emulator import Emulator, Faults

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-async", description="The finetune_async command line."
    )
    parser.add_argument("--version", action="version", version=f"finetune-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    emu = commands.add_parser(
        "emulator", help="run the local OpenAI-compatible fine-tuning emulator until Ctrl-C"
    )
    emu.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emu.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)"
    )
    emu.add_argument("--speed", type=float, default=1.0, help="clock speed-up (default 1.0)")
    emu.add_argument("--seed", type=int, default=None, help="seed for repeatable ids and faults")
    emu.add_argument("--api-key", default=None, help="accept only this Bearer key")
    emu.add_argument(
        "--rate-429", type=float, default=0.0, help="fraction of requests answered 429"
    )
    emu.add_argument("--rate-5xx", type=float, default=0.0, help="fraction answered 500")
    emu.add_argument("--rate-drop", type=float, default=0.0, help="fraction of connections dropped")
    emu.add_argument("--latency", type=float, default=0.0, help="extra seconds before each answer")
    emu.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of injected 429s")
    emu.add_argument(
        "--rate-limit", type=float, default=None, help="requests per second before answering 429"
    )
    return parser


async def _run_emulator(args: argparse.Namespace) -> None:
    faults = Faults(
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_drop=args.rate_drop,
        latency=args.latency,
        retry_after=args.retry_after,
        rate_limit=args.rate_limit,
    )
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
        api_key=args.api_key,
        faults=faults,
    )
    async with emulator:
        print(f"finetune-async emulator listening on {emulator.url}", flush=True)  # noqa: T201
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "emulator":
            asyncio.run(_run_emulator(args))
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:
        print(f"finetune-async: error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0
