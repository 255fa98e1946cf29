"""Figures as PNG files: matplotlib without a display (requirements-convert.txt; never needed on the
device), written atomically, in pixels that the tests can check."""
from __future__ import annotations

from pathlib import Path

from utils.errors import UserError
from utils.files import atomic_output, check_writable

DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend, or a ``UserError`` saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise UserError("plots need matplotlib: pip install -r requirements-convert.txt (or pip install "
                        "matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(width_px: int, height_px: int, rows: int = 1, columns: int = 1):
    """(figure, axes) of exactly ``width_px`` x ``height_px`` when saved; ``axes`` is a flat list."""
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(width_px / DPI, height_px / DPI), dpi=DPI, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG (atomically: a reader never sees half a file) and close it."""
    plt = pyplot()
    check_writable(path)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return path
