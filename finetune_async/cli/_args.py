"""Argument types of the command line: a bad value is a usage error (exit 2) naming the flag.

argparse reports an ``ArgumentTypeError`` as ``argument --port: <message>`` and exits 2, the
same code as any other usage error; a plain ``ValueError`` would print the function's Python
name instead (``invalid _number value``). Checking here also means a bad value never reaches the
emulator or the client, whose own messages name Python parameters, not flags.
"""

from __future__ import annotations

import argparse
import math

__all__ = [
    "fraction",
    "hyperparameter",
    "non_negative_float",
    "non_negative_int",
    "port",
    "positive_float",
    "positive_int",
]

_HIGHEST_PORT = 65_535


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_float(text: str) -> float:
    """Seconds and the like: a finite number above 0."""
    value = _float(text, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of 0 or more (a delay, a speed-up where 0 stops the clock)."""
    value = _float(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction from 0 to 1."""
    value = _float(text, "a fraction from 0 to 1")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A count or a page size: an integer of 1 or more."""
    value = _int(text, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of 0 or more (retries)."""
    value = _int(text, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0 picks a free one)."""
    value = _int(text, "a port from 0 to 65535")
    if not 0 <= value <= _HIGHEST_PORT:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return value


def hyperparameter(text: str) -> int | float | str:
    """``auto``, an int, or a float, as the hyperparameter flags take them.

    The range is the API's to state: the client checks it before sending, and the error is
    reworded to name the flag.
    """
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected "auto" or a number, got {text!r}') from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'expected "auto" or a number, got {text!r}')
    return value
