"""Which resize a Darknet model was trained with, read from its files: letterbox or stretch.

Darknet 2018 (Joseph Redmon's, Debian's ``darknet``) letterboxes. AlexeyAB's fork and Hank.ai's
Darknet/YOLO stretch the image to the network size, in training and in ``detector test``, unless
the cfg's ``[net]`` says ``letter_box=1``. The evidence, strongest first:

1. ``letter_box`` in ``[net]``: 1 letterbox, 0 stretch (only the forks read it);
2. the weights header: the forks write version 0.2.5, Darknet 2018 wrote 0.2.0;
3. an option only the forks know (``scale_x_y``, ``new_coords``, ``[route] groups``, …): stretch;
4. otherwise a classic cfg (yolov3, yolov3-tiny, yolov3-spp as released in 2018): letterbox.
"""
from __future__ import annotations

from pathlib import Path

from utils.darknet.cfg import Section
from utils.darknet.weights import read_version

# Options of each section that Darknet 2018's parser.c does not read: a cfg using them was written
# for a fork, and trained there.
FORK_ONLY_OPTIONS = {
    "net": {"mosaic", "cutmix", "mixup", "blur", "gaussian_noise", "flip", "label_smooth_eps", "adversarial_lr",
            "dynamic_minibatch", "contrastive", "track", "ema_alpha", "sequential_subdivisions",
            "optimized_memory", "workspace_size_limit_MB", "letter_box", "mosaic_bound", "max_chart_loss"},
    "route": {"groups", "group_id"},
    "yolo": {"scale_x_y", "new_coords", "iou_loss", "iou_normalizer", "cls_normalizer", "obj_normalizer",
             "nms_kind", "beta_nms", "max_delta", "objectness_smooth", "iou_thresh", "iou_thresh_kind",
             "counters_per_class", "label_smooth_eps", "focal_loss", "uc_normalizer", "delta_normalizer",
             "track_history_size"},
}
FORK_ACTIVATIONS = {"mish", "swish", "hard_mish", "gelu"}
FORK_WEIGHTS_REVISION = 5  # AlexeyAB's and Hank.ai's save_weights write 0.2.5; Darknet 2018 wrote 0.2.0


def _fork_option(sections: list[Section]) -> str | None:
    """Where the first fork-only option stands, as ``cfg line N: [kind] key``, or None."""
    for section in sections:
        for key in section.options:
            fork_value = key == "activation" and section.options[key] in FORK_ACTIVATIONS
            if key in FORK_ONLY_OPTIONS.get(section.kind, ()) or fork_value:
                shown = f"{key}={section.options[key]}" if fork_value else key
                return f"{section.where(key)} {shown}"
    return None


def resize_mode(sections: list[Section], weights: str | Path | None = None) -> tuple[str, str]:
    """(mode, why) for a parsed cfg and, when given, its weights file."""
    net = sections[0]
    if "letter_box" in net.options:
        mode = "letterbox" if net.int("letter_box") else "stretch"
        return mode, f"{net.where('letter_box')} letter_box={net.options['letter_box']}"
    version = read_version(weights) if weights is not None else None
    if version and version[:2] == (0, 2) and version[2] >= FORK_WEIGHTS_REVISION:
        return "stretch", (f"weights {weights} were written by AlexeyAB's or Hank.ai's Darknet (header "
                           f"{'.'.join(map(str, version))}), which stretch unless letter_box=1")
    fork = _fork_option(sections)
    if fork:
        return "stretch", f"{fork} is an option of AlexeyAB's and Hank.ai's Darknet, which stretch unless letter_box=1"
    header = f" and weights header {'.'.join(map(str, version))}" if version else ""
    return "letterbox", f"a classic cfg{header}: Darknet 2018 letterboxes"
