#!/usr/bin/env python3
"""int8 fidelity of four Tiny YOLOv3 models: leaky/prelu x head range fixed/calibrated.

    python bench/fidelity.py [--tiny]

Each int8 model is compared with the float Keras model it came from (utils/fidelity.py) on the
sample photos and Darknet's own photos (Debian's darknet package ships them), with its CPU time
per frame (LiteRT, 2 threads) and whether every op stays on the Edge TPU list.

The strict count is fragile: one 8-bit step on a few input values (what two letterbox
implementations that both round Darknet's floats may differ by) changes many int8 outputs. So
each model is also run on its inputs with 0.01 % of the values moved by one step, with JITTERS
seeds, and the range of strict counts is printed: differences inside it are noise.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utils.darknet.fetch_weights import fetch_weights  # noqa: E402
from utils.evaluation import fidelity
from utils.media.images import read_image  # noqa: E402
from utils.quantize import edgetpu_check  # noqa: E402
from utils.testing import model_cache  # noqa: E402
from utils.testing.darknet_reference import reference_photos as sample_paths  # noqa: E402
from utils.yolo.adapter import postprocess  # noqa: E402
from utils.yolo.detector import Detector  # noqa: E402
from utils.yolo.meta import load_meta_file, sidecar_paths  # noqa: E402

JITTERS = 8


def jittered(detector, image, seed: int):
    """Detections with 0.01 % of the 8-bit input values moved by one step (seeded)."""
    adapter = detector.adapters[0]
    tensor, box = adapter.prepare(image)
    values = tensor.copy().reshape(-1)
    rng = np.random.default_rng(seed)
    index = rng.choice(values.size, values.size // 10000, replace=False)
    limits = np.iinfo(values.dtype)
    values[index] = np.clip(values[index].astype(np.int64) + rng.choice([-1, 1], index.size), limits.min, limits.max)
    return postprocess(adapter.run(values.reshape(tensor.shape)), detector.meta, box, detector.threshold, detector.iou)


def frame_ms(detector, image, reps: int) -> float:
    for _ in range(3):
        detector.detect_timed(image)
    return float(np.median([detector.detect_timed(image)[1].total for _ in range(reps)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="few calibration samples and repetitions")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the matched shares as a chart")
    args = parser.parse_args()
    import keras

    import utils.runtime.keras_layers  # noqa: F401  (registers the custom layers)
    weights = fetch_weights(log=lambda message: None)
    paths = sample_paths()
    images = [read_image(p) for p in paths]
    samples, reps = ("8", 5) if args.tiny else ("100", 50)
    rows = []
    for leaky in ("keep", "prelu"):
        h5 = model_cache.built(ROOT / "model_data" / "yolov3-tiny.cfg", weights, ["--leaky", leaky])
        model = keras.models.load_model(h5, compile=False)
        meta = load_meta_file(sidecar_paths(h5)[0])
        reference = {i: fidelity.keras_detect(model, meta, image) for i, image in enumerate(images)}
        for fixed in (True, False):
            out = model_cache.built(ROOT / "model_data" / "yolov3-tiny.cfg", weights, ["--leaky", leaky],
                                    ["--num-samples", samples] + ([] if fixed else ["--no-fixed-range"]), paths)
            detector = Detector(out, threads=2)
            report = fidelity.Fidelity()
            for i, image in enumerate(images):
                fidelity.add_image(report, reference[i], detector.detect(image))
            noise = []
            for seed in range(JITTERS):
                jitter = fidelity.Fidelity()
                for i, image in enumerate(images):
                    fidelity.add_image(jitter, reference[i], jittered(detector, image, seed))
                noise.append(jitter.strict_matched)
            mapped = edgetpu_check.check(out).all_mapped
            rows.append((leaky, "fixed [-6, 10]" if fixed else "calibrated", report, (min(noise), max(noise)),
                         frame_ms(detector, images[0], reps), mapped))
    print(f"int8 fidelity against the float model, {len(images)} photos ({', '.join(p.name for p in paths)}), "
          f"{time.strftime('%Y-%m-%d')}" + (" (tiny mode)" if args.tiny else ""))
    print(f"{'activation':10} {'head range':15} {'strict':>9} {'jittered':>8} {'loose':>9} {'extra':>5} "
          f"{'mean |ds|':>9} {'CPU ms/frame':>12}  all ops on Edge TPU")
    for leaky, kind, report, (low, high), ms, mapped in rows:
        print(f"{leaky:10} {kind:15} {report.strict_matched:>4}/{report.strict_total:<4} {f'{low}-{high}':>8} "
              f"{report.loose_matched:>4}/{report.loose_total:<4} {report.extras:>5} {report.mean_delta:9.4f} "
              f"{ms:12.2f}  {'yes' if mapped else 'no'}")
    if args.plot:
        from figures import FIDELITY_SIZE as SIZE  # bench/figures.py, beside this script
        from figures import fidelity_chart
        fidelity_chart([(f"{leaky}, {kind}", report.loose_matched / max(report.loose_total, 1),
                         report.strict_matched / max(report.strict_total, 1),
                         (low / max(report.strict_total, 1), high / max(report.strict_total, 1)))
                        for leaky, kind, report, (low, high), _, _ in rows],
                       f"int8 against float, Tiny YOLOv3, {len(images)} photos" + (" (tiny mode)" if args.tiny else ""),
                       args.plot)
        print(f"wrote {args.plot} ({'x'.join(map(str, SIZE))} pixels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
