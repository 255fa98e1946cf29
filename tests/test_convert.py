"""convert.py: Keras outputs equal OpenCV's Darknet importer; Edge TPU-friendly ops; clean errors."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import MODEL_DATA, assert_user_error, run_script, sample_paths, sized_cfg_text
from utils.darknet.cfg import conv_layouts, parse_cfg
from utils.darknet.weights import write_weights
from utils.testing.opencv_reference import keras_heads, opencv_heads

pytestmark = pytest.mark.slow


def compare_with_opencv(cfg: Path, weights: Path, h5: Path, size: tuple[int, int]):
    from utils.yolo.letterbox import letterbox_float
    for path in sample_paths()[:3]:
        x = letterbox_float(cv2.imread(str(path)), size)
        ours, reference = keras_heads(h5, x), opencv_heads(cfg, weights, x)
        assert [o.shape for o in ours] == [r.shape for r in reference]
        for o, r in zip(ours, reference):
            spread = float(r.std(axis=(1, 2)).mean())
            assert np.abs(o - r).max() <= min(1e-3, 1e-2 * spread), (path.name, np.abs(o - r).max(), spread)


def test_real_tiny_matches_opencv(model_factory, weights, tiny_cfg):
    compare_with_opencv(tiny_cfg, weights, model_factory("tiny_keep"), (416, 416))


@pytest.mark.parametrize("name, size", [("yolov3", (416, 416)), ("yolov3", (320, 192)), ("yolov3-spp", (416, 416)),
                                        ("yolov4-tiny", (416, 416)), ("yolov4-tiny", (608, 352)),
                                        ("yolov7-tiny", (416, 416)), ("yolov7-tiny", (608, 352)),
                                        ("yolov4-tiny-3l", (608, 608)), ("yolov4-tiny-3l", (608, 352)),
                                        ("yolov3-tiny-prn", (416, 416)), ("yolov3-tiny-prn", (608, 352))])
def test_random_weights_match_opencv(tmp_path, model_factory, name, size):
    cfg = MODEL_DATA / f"{name}.cfg"
    # OpenCV reads the input size from [net]: write the size under test there.
    sized_cfg = tmp_path / f"{name}.cfg"
    sized_cfg.write_text(sized_cfg_text(cfg, size))
    weights = tmp_path / f"{name}.weights"
    write_weights(weights, conv_layouts(parse_cfg(sized_cfg)), np.random.default_rng(1))
    h5 = model_factory(f"{name}_{size[0]}x{size[1]}_random", ["--input-size", f"{size[0]}x{size[1]}"], cfg=cfg,
                       weights_path=weights)
    compare_with_opencv(sized_cfg, weights, h5, size)


def test_prelu_equals_leaky(model_factory):
    from utils.yolo.letterbox import letterbox_float
    x = letterbox_float(cv2.imread(str(sample_paths()[0])), (416, 416))
    for keep, prelu in zip(keras_heads(model_factory("tiny_keep"), x), keras_heads(model_factory("tiny_prelu", ["--leaky", "prelu"]), x)):
        assert np.abs(keep - prelu).max() <= 1e-4


def test_relu_cfg_and_keras_format(tmp_path, tiny_cfg):
    cfg = tmp_path / "relu.cfg"
    cfg.write_text(tiny_cfg.read_text().replace("activation=leaky", "activation=relu"))
    weights = tmp_path / "relu.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(2))
    out = tmp_path / "relu.keras"
    result = run_script("convert.py", str(cfg), str(weights), str(out), "--leaky", "relu", check=True)
    assert "wrote" in result.stdout and (tmp_path / "relu_yolo.json").is_file()
    assert (tmp_path / "relu_anchors.txt").read_text().startswith("10,14, 23,27")
    compare_with_opencv(cfg, weights, out, (416, 416))


def test_summary_and_sidecars(model_factory, build_dir):
    model_factory("tiny_keep")
    import json
    meta = json.loads((build_dir / "tiny_keep_yolo.json").read_text())
    assert [h["mask"] for h in meta["heads"]] == [[3, 4, 5], [0, 1, 2]]
    assert meta["classes"] == 80 and meta["input_size"] == [416, 416]


def test_upsample_is_resize_nearest_v2(model_factory, build_dir):
    float_model = model_factory("tiny_keep_float", quant_args=["--float"])
    from utils.quantize.edgetpu_check import check
    ops = {op.name: op.version for op in check(float_model).ops}
    assert ops["RESIZE_NEAREST_NEIGHBOR"] <= 2
    assert not {"TILE", "RESHAPE", "SHAPE"} & set(ops)


@pytest.fixture
def bad_inputs(tmp_path, weights, tiny_cfg):
    truncated = tmp_path / "truncated.weights"
    truncated.write_bytes(weights.read_bytes()[:1_000_000])
    extra = tmp_path / "extra.weights"
    extra.write_bytes(weights.read_bytes() + b"\0" * 8)
    unknown = tmp_path / "unknown.cfg"
    unknown.write_text(tiny_cfg.read_text().replace("[upsample]", "[upsampel]"))
    malformed = tmp_path / "malformed.cfg"
    malformed.write_text(tiny_cfg.read_text().replace("filters=16", "filters=1x6", 1))
    return {"truncated": truncated, "extra": extra, "unknown": unknown, "malformed": malformed}


@pytest.mark.parametrize("case, fragments", [
    ("truncated", ["truncated.weights", "floats run out at layer"]),
    ("extra", ["extra.weights", "2 floats left over"]),
    ("other_cfg", ["yolov3-tiny.weights", "do not belong together"]),
    ("unknown", ["unknown.cfg", "unknown section [upsampel]"]),
    ("malformed", ["malformed.cfg", "'filters=1x6' is not an integer"]),
    ("missing", ["nothere.weights", "no such file"]),
    ("size", ["multiples of 32"]),
])
def test_bad_input_is_one_line_exit_2_no_output(tmp_path, bad_inputs, weights, tiny_cfg, case, fragments):
    cfg, weights_file, extra_args = tiny_cfg, weights, []
    if case in ("truncated", "extra"):
        weights_file = bad_inputs[case]
    elif case in ("unknown", "malformed"):
        cfg = bad_inputs[case]
    elif case == "other_cfg":
        cfg = MODEL_DATA / "yolov4-tiny.cfg"
    elif case == "missing":
        weights_file = tmp_path / "nothere.weights"
    elif case == "size":
        extra_args = ["--input-size", "400"]
    out = tmp_path / "out.h5"
    result = run_script("convert.py", str(cfg), str(weights_file), str(out), *extra_args)
    assert_user_error(result, *fragments)
    assert not any(tmp_path.glob("out*")), list(tmp_path.iterdir())
