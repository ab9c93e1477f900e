"""Loss curves of a fine-tuning job drawn to a PNG, with matplotlib (the ``plot`` extra).

matplotlib is imported only when a plot is asked for, so the command line works without it.
The figure is drawn on the Agg canvas directly, never through ``pyplot``: no global figure state,
no GUI backend chosen from the environment, nothing left open after the file is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import InvalidParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..types import StepMetrics

__all__ = ["Plotter", "load_plotter"]

#: (attribute, legend label, line style) of each loss curve, drawn when the file reports it.
_CURVES = (
    ("train_loss", "training loss", "-"),
    ("valid_loss", "validation loss", "--"),
    ("full_valid_loss", "full validation loss", "o"),
)


class Plotter(Protocol):
    """Draws the loss curves of ``rows`` to ``path`` as a PNG and returns the path."""

    def __call__(self, rows: Sequence[StepMetrics], path: Path, *, title: str) -> Path:
        """Draw and save."""
        ...


def _check_target(path: str) -> Path:
    target = Path(os.fspath(path))
    if target.is_dir():
        msg = f"--plot: {target} is a directory; give a file name such as loss.png"
        raise InvalidParameterError(msg, param="plot")
    if not target.parent.is_dir():
        msg = f"--plot: the folder {target.parent} does not exist"
        raise InvalidParameterError(msg, param="plot")
    return target


def load_plotter(path: str) -> tuple[Plotter, Path]:
    """Import matplotlib and check the target, before any request is sent.

    Raises:
        InvalidParameterError: matplotlib is not installed (with the extra to install), or the
            target is a folder or in a folder that does not exist.
    """
    target = _check_target(path)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as exc:
        msg = "--plot needs matplotlib: install finetune-async[plot]"
        raise InvalidParameterError(msg, param="plot") from exc

    def draw(rows: Sequence[StepMetrics], path: Path, *, title: str) -> Path:
        figure = Figure(figsize=(8, 4.5), layout="constrained")
        FigureCanvasAgg(figure)  # attaches itself: the figure renders with Agg, no GUI
        axes = figure.add_subplot()
        for attribute, label, style in _CURVES:
            points = [
                (row.step, value) for row in rows if (value := getattr(row, attribute)) is not None
            ]
            if points:
                steps, values = zip(*points, strict=True)
                axes.plot(steps, values, style, label=label, markersize=4)
        axes.set_xlabel("step")
        axes.set_ylabel("loss")
        axes.set_title(title)
        axes.grid(visible=True, alpha=0.3)
        if axes.lines:
            axes.legend()
        figure.savefig(os.fspath(path), format="png")
        return path

    return draw, target
