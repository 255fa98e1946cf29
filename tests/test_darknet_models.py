"""Darknet's current tiny models: YOLOv7-tiny (new_coords, DIoU-NMS), YOLOv4-tiny-3l, YOLOv3-tiny-PRN,
and custom class and anchor counts, from cfg to detections, checked against OpenCV's importer."""
import json

import cv2
import numpy as np
import pytest

from conftest import MODEL_DATA, assert_user_error, run_script, sample_paths
from utils.darknet.cfg import conv_layouts, parse_cfg, parse_cfg_text
from utils.darknet.weights import write_weights
from utils.errors import UserError
from utils.quantize import edgetpu_check

NEW_MODELS = ("yolov7-tiny", "yolov4-tiny-3l", "yolov3-tiny-prn")


def test_training_options_are_accepted_and_others_named():
    sections = parse_cfg(MODEL_DATA / "yolov7-tiny.cfg")
    yolo = [s for s in sections if s.kind == "yolo"][0]
    assert {"iou_loss", "objectness_smooth", "resize", "max_delta"} <= set(yolo.options)
    text = (MODEL_DATA / "yolov3-tiny.cfg").read_text()
    for old, new, option in (("stride=1\n", "stride=1\ndilation=2\n", "dilation"),
                             ("[upsample]\n", "[upsample]\nreverse=1\n", "reverse"),
                             ("classes=80", "classes=80\nmy_new_trick=1", "my_new_trick")):
        with pytest.raises(UserError, match=f"option '{option}' is not supported"):
            parse_cfg_text(text.replace(old, new, 1), "cfg x.cfg")
    with pytest.raises(UserError, match="nms_kind=cornersnms"):
        parse_cfg_text(text.replace("classes=80", "classes=80\nnms_kind=cornersnms", 1))
    with pytest.raises(UserError, match="num=5 but 6 anchors"):
        parse_cfg_text(text.replace("num=6", "num=5", 1))


def test_shortcut_from_is_absolute_when_positive():
    from utils.darknet.cfg import shortcut_source
    sections = parse_cfg(MODEL_DATA / "yolov3-tiny-prn.cfg")
    sources = [shortcut_source(s, i) for i, s in enumerate(sections[1:]) if s.kind == "shortcut"]
    assert sources == [10, 14, 8, 21, 8]  # from=-3, -2, 8, -3, 8


@pytest.mark.slow
@pytest.mark.parametrize("name, nms, beta, new_coords", [("yolov7-tiny", "diou", 0.6, True),
                                                         ("yolov4-tiny-3l", "diou", 0.6, False),
                                                         ("yolov3-tiny-prn", "iou", 0.6, False)])
def test_metadata_carries_nms_and_new_coords(tmp_path, model_factory, name, nms, beta, new_coords):
    cfg = MODEL_DATA / f"{name}.cfg"
    weights = tmp_path / "w.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(1))
    h5 = model_factory(f"{name}_random", cfg=cfg, weights_path=weights)
    meta = json.loads(h5.with_name(f"{h5.stem}_yolo.json").read_text())
    assert (meta["nms"], meta["nms_beta"]) == (nms, beta)
    assert all(h["new_coords"] == new_coords for h in meta["heads"])


@pytest.mark.slow
def test_yolov7_decoded_boxes_equal_opencvs_yolo_output(tmp_path, model_factory):
    """new_coords decoding (no sigmoid, x = 2v - 0.5, w = (2v)^2 anchor) against OpenCV's own [yolo]
    layer on the same input: every cell and anchor, boxes, objectness and class scores."""
    import keras

    import utils.runtime.keras_layers  # noqa: F401  (registers the custom layers)
    from utils.yolo.decode import decode_head
    from utils.yolo.letterbox import letterbox_float
    from utils.yolo.meta import load_meta_file
    from utils.yolo.types import HeadOutput
    cfg = MODEL_DATA / "yolov7-tiny.cfg"
    weights = tmp_path / "w.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(7))
    h5 = model_factory("yolov7-tiny_random7", cfg=cfg, weights_path=weights)
    meta = load_meta_file(h5.with_name(f"{h5.stem}_yolo.json"))
    x = letterbox_float(cv2.imread(str(sample_paths()[0])), (416, 416))
    heads = keras.models.load_model(h5, compile=False)(x, training=False)
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setInput(x.transpose(0, 3, 1, 2).copy())
    reference = net.forward(net.getUnconnectedOutLayersNames())  # rows: cx, cy, w, h, objectness, scores
    worst = np.zeros(4)
    for index, (head, rows) in enumerate(zip(heads, reference)):
        boxes, probabilities = decode_head(HeadOutput(np.asarray(head)), meta, index, 1e-9)
        assert boxes.shape == (len(rows), 4)  # every cell and anchor passes a threshold of 1e-9
        objectness = np.asarray(head).reshape(-1, 85)[:, 4]
        shown = rows[:, 5:] > 0  # OpenCV zeroes scores under its own threshold
        worst = np.maximum(worst, [np.abs(boxes[:, :2] - rows[:, :2]).max(), np.abs(boxes[:, 2:] - rows[:, 2:4]).max(),
                                   np.abs(objectness - rows[:, 4]).max(),
                                   np.abs(probabilities - rows[:, 5:])[shown].max() if shown.any() else 0])
    print("max |d| centre, size, objectness, class score:", worst)
    assert worst.max() <= 1e-5, worst


def custom_cfg(base: str, classes: int, anchors_per_head: int) -> str:
    """``base`` with ``classes`` classes and ``anchors_per_head`` anchors in each [yolo] head."""
    sections = parse_cfg(MODEL_DATA / f"{base}.cfg")
    heads = sum(s.kind == "yolo" for s in sections)
    total = heads * anchors_per_head
    anchors = ", ".join(f"{12 * (k + 1)},{16 * (k + 1)}" for k in range(total))
    lines, yolo_seen, out = (MODEL_DATA / f"{base}.cfg").read_text().splitlines(), 0, []
    filters = anchors_per_head * (5 + classes)
    for line in lines:
        key = line.split("=")[0].strip()
        if key == "filters" and "255" in line:
            line = f"filters={filters}"
        elif key == "classes":
            line = f"classes={classes}"
        elif key == "num":
            line = f"num={total}"
        elif key == "anchors":
            line = f"anchors={anchors}"
        elif key == "mask":
            first = (heads - 1 - yolo_seen) * anchors_per_head if base == "yolov3-tiny" else yolo_seen * anchors_per_head
            line = "mask=" + ",".join(str(first + k) for k in range(anchors_per_head))
            yolo_seen += 1
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("base, classes, anchors", [("yolov3-tiny", 1, 3), ("yolov7-tiny", 3, 2)])
def test_custom_classes_end_to_end(tmp_path, model_factory, base, classes, anchors):
    """A custom cfg (random weights) through convert -> quantize -> inference, with a names file of
    ``classes`` lines (a single line for the most common custom model)."""
    cfg = tmp_path / "custom.cfg"
    cfg.write_text(custom_cfg(base, classes, anchors))
    weights = tmp_path / "custom.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(3))
    image = str(sample_paths()[0])
    tflite = model_factory(f"custom_{base}_{classes}", ["--leaky", "prelu"],
                           ["--dataset", image, "--num-samples", "4", "--eval-images", image], cfg=cfg,
                           weights_path=weights)
    report = edgetpu_check.check(tflite)
    assert report.all_mapped, report.format()
    names = tmp_path / "custom.names"
    names.write_text("\n".join(f"thing{k}" for k in range(classes)) + "\n")
    result = run_script("inference.py", "--model", str(tflite), "--classes", str(names),
                        "--image", image, "--json", "-t", "0.5", check=True)
    record = json.loads(result.stdout.splitlines()[0])
    assert record["source"] == image and all(d["label"].startswith("thing") for d in record["detections"])
    two = tmp_path / "two.names"
    two.write_text("a\nb\nc\nd\n")
    assert_user_error(run_script("inference.py", "--model", str(tflite), "--classes", str(two),
                                 "--image", image), f"{classes} classes")


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_MODELS)
def test_prelu_models_map_to_the_edge_tpu(tmp_path, model_factory, name):
    cfg = MODEL_DATA / f"{name}.cfg"
    weights = tmp_path / "w.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(1))
    image = str(sample_paths()[0])
    tflite = model_factory(f"{name}_prelu", ["--leaky", "prelu"],
                           ["--dataset", image, "--num-samples", "4", "--eval-images", image], cfg=cfg,
                           weights_path=weights)
    report = edgetpu_check.check(tflite)
    assert report.all_mapped, report.format()
    stdout = tflite.with_suffix(".stdout").read_text()  # what the quantizer printed
    assert "Number of operations that will run on CPU: 0" in stdout
    assert stdout.rstrip().splitlines()[-1].startswith("Parameters:")  # the report comes last
    assert "fits the ~8 MiB on-chip cache" in stdout  # all three are under 8 MiB of int8 parameters
