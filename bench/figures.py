"""The benches' figures (``--plot FILE.png``), next to their tables: speed per stage, int8 against float."""
from __future__ import annotations

from pathlib import Path

from utils.plotting import figure, save

STAGE_COLOURS = {"pre": "#6b9fd1", "invoke": "#3b75af", "post": "#ef8636", "draw": "#519e3e"}
SPEED_SIZE = (1000, 520)
FIDELITY_SIZE = (1000, 440)


def speed_chart(rows: list[tuple[str, dict[str, float]]], others: list[tuple[str, float]], title: str, path: Path) -> Path:
    """Stacked bars of median milliseconds per stage for each configuration, then the others' whole frames."""
    fig, (ax,) = figure(*SPEED_SIZE)
    labels = [label for label, _ in rows] + [label for label, _ in others]
    totals = [sum(stages[stage] for stage in STAGE_COLOURS) for _, stages in rows]
    limit = 1.3 * max(totals + [ms for _, ms in others if ms < 4 * max(totals)])  # Darknet's seconds go off the scale
    for index, (_, stages) in enumerate(rows):
        left = 0.0
        for stage, colour in STAGE_COLOURS.items():
            ax.barh(index, stages[stage], left=left, color=colour, label=stage if index == 0 else None)
            left += stages[stage]
        ax.text(left, index, f" {left:.1f} ms", va="center", fontsize=8)
    for index, (_, ms) in enumerate(others, len(rows)):
        ax.barh(index, min(ms, limit), color="#999999")
        ax.text(min(ms, limit), index, f" {ms:.1f} ms" if ms < limit else f"{ms:.0f} ms (off the scale) ",
                va="center", ha="left" if ms < limit else "right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlim(0, limit)
    ax.set_xlabel("milliseconds per frame (median)")
    return _finish(fig, ax, title, "upper right", "x", path)


def fidelity_chart(rows: list[tuple[str, float, float, tuple[float, float]]], title: str, path: Path) -> Path:
    """Per model: the loose and strict share of the float model's detections the int8 model kept,
    with the strict count's jitter range (what one 8-bit step on a few inputs moves it by)."""
    fig, (ax,) = figure(*FIDELITY_SIZE)
    positions = range(len(rows))
    ax.bar([p - 0.2 for p in positions], [loose for _, loose, _, _ in rows], 0.4, color="#3b75af",
           label="loose (score >= 0.35, IoU >= 0.5)")
    strict = [value for _, _, value, _ in rows]
    low = [value - lo for (_, _, value, (lo, _)) in rows]
    high = [hi - value for (_, _, value, (_, hi)) in rows]
    ax.bar([p + 0.2 for p in positions], strict, 0.4, color="#ef8636", yerr=[[max(v, 0) for v in low],
           [max(v, 0) for v in high]], capsize=4, label="strict (IoU >= 0.9, |dscore| <= 0.03), jitter range")
    ax.set_xticks(list(positions), [label for label, _, _, _ in rows], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of the float model's detections matched")
    return _finish(fig, ax, title, "lower right", "y", path)


def _finish(fig, ax, title: str, legend: str, grid: str, path: Path) -> Path:
    ax.set_title(title, fontsize=10)
    ax.legend(loc=legend, fontsize=8)
    ax.grid(axis=grid, alpha=0.3)
    fig.tight_layout()
    return save(fig, path)
