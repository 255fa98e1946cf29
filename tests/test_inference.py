"""inference.py: Darknet's own detections, video end to end, JSON, and clear errors."""
import json

import cv2
import numpy as np
import pytest

from conftest import MODEL_DATA, assert_user_error, match, run_script, sample_paths, sized_cfg_text
from helpers import tflite_detections
from utils.darknet.cfg import conv_layouts, parse_cfg
from utils.darknet.weights import write_weights
from utils.testing import darknet_reference as darknet_ref
from utils.tflite import model as tflite_model

pytestmark = pytest.mark.slow
needs_darknet = pytest.mark.skipif(not darknet_ref.available(), reason="Debian's darknet is not installed")


def darknet_detections(cfg, weights, classes=80, threshold=0.25, images=None, resize="letterbox"):
    net = darknet_ref.Darknet(cfg, weights)
    return {p.name: net.detect(cv2.imread(str(p)), classes, threshold, resize=resize) for p in images or sample_paths()}


def with_portraits(directory):
    """The sample photos and each one turned on its side: landscape, portrait and one square photo."""
    paths = list(sample_paths())
    for path in sample_paths():
        paths.append(directory / f"portrait-{path.name}")
        cv2.imwrite(str(paths[-1]), np.ascontiguousarray(cv2.imread(str(path)).transpose(1, 0, 2)))
    return paths


def assert_same(reference, ours, min_score, min_iou, max_dscore):
    assert any(reference.values()), "the reference found nothing: the comparison would be empty"
    for name in reference:
        missing, extra = match(reference[name], ours[name], min_score, min_iou, max_dscore)
        assert not missing and not extra, (name, missing, extra)


@needs_darknet
def test_float_tflite_equals_darknet(model_factory, weights, tiny_cfg):
    reference = darknet_detections(tiny_cfg, weights)
    dog = {(c, round(s, 2)) for c, s, _ in reference["dog.jpg"]}
    assert {16, 1, 2, 7} <= {c for c, _ in dog}  # dog, bicycle, car, truck
    assert_same(reference, tflite_detections(model_factory("tiny_keep_float", quant_args=["--float"]), sample_paths()),
                0.30, 0.98, 0.01)


@needs_darknet
@pytest.mark.parametrize("size", [(416, 416), (608, 352)])
def test_float_stretch_tflite_equals_darknets_stretch(tmp_path, model_factory, weights, tiny_cfg, size):
    """A stretch model gives the detections of AlexeyAB's and Hank.ai's Darknet: libdarknet's own
    resize_image to the network size, network_predict, boxes scaled back per axis. The letterbox's
    detections differ on the same photos, so the comparison can tell the two apart."""
    cfg = tmp_path / f"tiny-{size[0]}x{size[1]}.cfg"
    cfg.write_text(sized_cfg_text(tiny_cfg, size))
    images = with_portraits(tmp_path)
    model = model_factory(f"tiny_stretch_{size[0]}x{size[1]}_float",
                          ["--resize", "stretch", "--input-size", f"{size[0]}x{size[1]}"], ["--float"])
    stretched = darknet_detections(cfg, weights, images=images, resize="stretch")
    assert_same(stretched, tflite_detections(model, images), 0.30, 0.98, 0.01)
    letterboxed = darknet_detections(cfg, weights, images=images)
    assert any(match(stretched[name], letterboxed[name], 0.30, 0.98, 0.01) != ([], []) for name in stretched)


@needs_darknet
@pytest.mark.parametrize("name, args", [("tiny_keep_int8", []), ("tiny_prelu_int8", ["--leaky", "prelu"])])
def test_int8_tflite_finds_darknets_objects(model_factory, weights, tiny_cfg, name, args):
    reference = darknet_detections(tiny_cfg, weights)
    model = model_factory(name, args, [])
    ours = tflite_detections(model, sample_paths())
    assert_same(reference, ours, 0.35, 0.5, 1.0)


@needs_darknet
def test_non_square_input(tmp_path, model_factory, weights, tiny_cfg):
    cfg = tmp_path / "tiny-608x352.cfg"
    cfg.write_text(sized_cfg_text(tiny_cfg, (608, 352)))
    model = model_factory("tiny_608x352_float", ["--input-size", "608x352"], ["--float"])
    assert_same(darknet_detections(cfg, weights), tflite_detections(model, sample_paths()), 0.30, 0.98, 0.01)


@needs_darknet
def test_three_heads_yolov3_random_weights(build_dir, model_factory):
    # 320x192 keeps Darknet's slow CPU build to seconds per image, and is non-square too.
    cfg = build_dir / "yolov3-320x192.cfg"
    cfg.write_text(sized_cfg_text(MODEL_DATA / "yolov3.cfg", (320, 192)))
    weights = build_dir / "yolov3-random.weights"
    write_random_detector(cfg, weights, (320, 192))
    model = model_factory("yolov3_random_float", [], ["--float"], cfg=cfg, weights_path=weights)
    images = sample_paths()[:2]
    for resize in ("letterbox", "stretch"):  # the stretch through Detector's override of the model's mode
        reference = darknet_detections(cfg, weights, images=images, resize=resize)
        assert 0 < sum(map(len, reference.values())) < 500, reference
        assert_same(reference, tflite_detections(model, images, resize=resize), 0.30, 0.98, 0.01)


def write_random_detector(cfg, path, size, class_bias=-5.0):
    """Random weights with sane heads: each head's logits scaled to unit spread (measured with
    OpenCV on a sample photo) and class logits pushed down, so a handful of (box, class) pairs pass
    the threshold. Plain random heads give thousands of degenerate boxes: a comparison of noise."""
    from utils.yolo.letterbox import letterbox_float
    layouts = conv_layouts(parse_cfg(cfg))
    write_weights(path, layouts, np.random.default_rng(5))
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(path))
    net.setInput(letterbox_float(cv2.imread(str(sample_paths()[0])), size).transpose(0, 3, 1, 2).copy())
    names = [f"conv_{int(n.split('_')[1]) - 1}" for n in net.getUnconnectedOutLayersNames()]
    spreads = iter(float(o.std()) for o in net.forward(names))
    floats = np.fromfile(path, np.float32, offset=20)
    offset = 0
    for layout in layouts:
        if not layout.batch_normalize:  # a head convolution: bias, then kernel
            head = floats[offset:offset + layout.float_count()]
            head /= next(spreads)
            head[:layout.filters].reshape(-1, 85)[:, 5:] += class_bias
        offset += layout.float_count()
    path.write_bytes(path.read_bytes()[:20] + floats.tobytes())


def test_video_end_to_end(tmp_path, model_factory, coco_names):
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 5, (640, 480))
    frames = [cv2.resize(cv2.imread(str(p)), (640, 480)) for p in sample_paths()[:2]] * 3
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "annotated.avi"
    result = run_script("inference.py", "--model", str(model_factory("tiny_keep_int8", [], [])), "--classes",
                        str(coco_names), "--video", str(clip), "--output", str(out), "--json", "--no-display", check=True)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["frame"] for line in lines] == list(range(len(frames)))
    assert {"source", "frame", "detections", "ms"} <= set(lines[0]) and lines[0]["detections"]
    det = lines[0]["detections"][0]
    assert {"class_id", "label", "score", "box"} == set(det) and len(det["box"]) == 4
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    assert "FPS overall" in result.stderr


def test_image_output_and_anchors_fallback(tmp_path, model_factory, coco_names):
    model = tflite_model.load(model_factory("tiny_keep_int8", [], []))
    model.metadata = []
    bare = tmp_path / "bare.tflite"
    tflite_model.save(model, bare)
    out = tmp_path / "dog_out.jpg"
    result = run_script("inference.py", "--model", str(bare), "--anchors", str(MODEL_DATA / "yolov3-tiny_anchors.txt"),
                        "--classes", str(coco_names), "--image", str(sample_paths()[0]), "--output", str(out),
                        "--no-display", check=True)
    assert "dog" in result.stdout and "bicycle" in result.stdout and cv2.imread(str(out)) is not None
    bad_anchors = tmp_path / "nine.txt"
    bad_anchors.write_text((MODEL_DATA / "yolov3_anchors.txt").read_text())
    assert_user_error(run_script("inference.py", "--model", str(bare), "--anchors", str(bad_anchors), "--classes",
                                 str(coco_names), "--image", str(sample_paths()[0])), "nine.txt", "9 anchors")


def test_errors(tmp_path, model_factory, coco_names):
    model = str(model_factory("tiny_keep_int8", [], []))
    image = str(sample_paths()[0])
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"x" * 64)
    broken_image = tmp_path / "broken.jpg"
    broken_image.write_bytes(b"\xff\xd8 nope")
    few = tmp_path / "few.names"
    few.write_text("a\nb\n")

    def run(*args):
        return run_script("inference.py", "--no-display", *args)
    assert_user_error(run("--model", "nope.tflite", "--classes", str(coco_names), "--image", image), "nope.tflite", "no such file")
    assert_user_error(run("--model", str(garbage), "--classes", str(coco_names), "--image", image), "garbage.tflite", "not a TFLite")
    assert_user_error(run("--model", model, "--classes", str(few), "--image", image), "few.names", "2 names", "80 classes")
    assert_user_error(run("--model", model, "--classes", "none.names", "--image", image), "none.names")
    assert_user_error(run("--model", model, "--classes", str(coco_names), "--image", "none.jpg"), "none.jpg")
    assert_user_error(run("--model", model, "--classes", str(coco_names), "--image", str(broken_image)), "broken.jpg")
    assert_user_error(run("--model", model, "--classes", str(coco_names), "--video", "none.mp4"), "none.mp4")
    assert_user_error(run("--model", model, "--classes", str(coco_names), "--cam", "7"), "camera 7", "cannot be opened")
    assert_user_error(run("--model", model, "--classes", str(coco_names), "--image", image, "--edge_tpu"),
                      "Edge TPU runtime not found", "libedgetpu")
    assert_user_error(run("--model", str(model_factory("tiny_keep_float", quant_args=["--float"])), "--classes",
                          str(coco_names), "--image", image, "--quant"), "--quant")


def test_compiled_model_needs_edge_tpu(tmp_path, model_factory, coco_names):
    from ai_edge_litert import schema_py_generated as schema
    model = tflite_model.load(model_factory("tiny_keep_int8", [], []))
    model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = tflite_model.EDGETPU_CUSTOM_OP
    compiled = tmp_path / "m_edgetpu.tflite"
    tflite_model.save(model, compiled)
    assert_user_error(run_script("inference.py", "--model", str(compiled), "--classes", str(coco_names), "--image",
                                 str(sample_paths()[0])), "m_edgetpu.tflite", "compiled for the Edge TPU", "--edge_tpu")
