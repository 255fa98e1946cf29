"""The per-layer int8 error as a bar chart (``python -m utils.quant_debug --plot``, the quantizer's
``--debug-layers``): layers in network order, so that where the error grows reads at a glance."""
from __future__ import annotations

import re
from pathlib import Path

from utils.plotting import figure, save
from utils.quantize.debugger import ROUNDING_ONLY, LayerError

WIDTH_PX = 1000
ROW_PX = 22
MARGIN_PX = 130
OP_COLOURS = {"CONV_2D": "#3b75af", "DEPTHWISE_CONV_2D": "#6b9fd1", "LEAKY_RELU": "#ef8636", "PRELU": "#c5702f",
              "CONCATENATION": "#519e3e", "MAX_POOL_2D": "#8d69b8", "RESIZE_NEAREST_NEIGHBOR": "#84584e"}


def network_position(error: LayerError) -> tuple[int, int, str]:
    """Heads last; other layers by their Darknet section number ("conv_13_leaky" after "conv_13")."""
    if error.tensor.startswith("head "):
        return (1, 0, error.tensor)
    number = re.search(r"_(\d+)", error.tensor)
    return (0, int(number.group(1)) if number else 10**6, error.tensor)


def chart_size(layers: int) -> tuple[int, int]:
    return WIDTH_PX, MARGIN_PX + ROW_PX * layers


def layer_error_chart(errors: list[LayerError], path: Path, title: str) -> Path:
    """One bar per layer (RMS error in 8-bit steps), coloured by op, with rounding alone (0.29) marked."""
    ordered = sorted(errors, key=network_position)
    fig, (ax,) = figure(*chart_size(len(ordered)))
    colours = [OP_COLOURS.get(e.op, "#999999") for e in ordered]
    ax.barh(range(len(ordered)), [e.steps for e in ordered], color=colours)
    ax.set_yticks(range(len(ordered)), [f"{e.tensor} ({e.op.lower()})" for e in ordered], fontsize=8)
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.axvline(ROUNDING_ONLY, color="black", linestyle="--", linewidth=1, label=f"rounding alone ({ROUNDING_ONLY:.2f})")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("RMS error against float, in 8-bit steps of the layer's output (worse to the right)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)
