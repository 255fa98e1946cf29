"""Precision–recall curves of evaluate.py as figures (``--plots DIR``)."""
from __future__ import annotations

import re
from pathlib import Path

from utils.evaluation.runner import Evaluation, Run
from utils.plotting import figure, save

MAX_CLASS_PANELS = 11   # with "all classes", a 3 x 4 grid; the classes with most objects first
PANEL_PX = (400, 330)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "model"


def _panel(ax, title: str, curves: list[tuple[str, dict, float]]) -> None:
    for label, curve, ap in curves:
        recall, precision = [0.0, *curve["recall"]], [curve["precision"][0] if curve["precision"] else 0.0,
                                                      *curve["precision"]]
        ax.step(recall, precision, where="pre", linewidth=1.6, label=f"{label} (AP {ap:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title, xlabel="recall", ylabel="precision")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)


def pr_figure(runs: list[Run], names: list[str], path: Path, short: list[str] | None = None) -> Path:
    """All classes together and each class (most objects first), one line per run in every panel."""
    short = short or [run.label for run in runs]
    first = runs[0].result
    classes = sorted(first.classes, key=lambda c: -c.truths)[:MAX_CLASS_PANELS]
    panels = 1 + len(classes)
    columns = min(panels, 4)
    rows = -(-panels // columns)
    fig, axes = figure(PANEL_PX[0] * columns, PANEL_PX[1] * rows, rows, columns)
    _panel(axes[0], f"all classes ({sum(c.truths for c in first.classes)} objects; mAP in the legend)",
           [(label, run.result.curve, run.result.map50) for label, run in zip(short, runs)])
    for ax, item in zip(axes[1:], classes):
        index = [c.class_id for c in first.classes].index(item.class_id)
        _panel(ax, f"{names[item.class_id]} ({item.truths})",
               [(label, run.result.classes[index].curve, run.result.classes[index].ap50) for label, run in zip(short, runs)])
    for ax in axes[panels:]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def write_plots(evaluation: Evaluation, names: list[str], directory: Path) -> list[Path]:
    """One figure per run (``pr_1_<model>.png`` ...) and, for several runs, one with them overlaid."""
    directory.mkdir(parents=True, exist_ok=True)
    runs = evaluation.runs
    paths = [Path(run.detector.engine.path) for run in runs]
    short = [f"{i}: {run.label.replace(str(path), path.name, 1)}" for i, (run, path) in enumerate(zip(runs, paths), 1)]
    written = [pr_figure([run], names, directory / f"pr_{i}_{slug(path.stem)}.png", [label])
               for i, (run, path, label) in enumerate(zip(runs, paths, short), 1)]
    if len(runs) > 1:
        written.append(pr_figure(runs, names, directory / "pr_all_models.png", short))
    return written
