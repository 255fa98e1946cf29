"""keras_to_tflite_quant.py: full-int8 models the Edge TPU maps, a checker that catches each rule, fidelity."""
import numpy as np
import pytest

from conftest import MODEL_DATA, assert_user_error, match, run_script, sample_paths
from helpers import keras_detections, tflite_detections
from utils.darknet.cfg import conv_layouts, parse_cfg
from utils.darknet.weights import write_weights
from utils.quantize import edgetpu_check
from utils.quantize.debug_plot import chart_size
from utils.quantize.debugger import DEBUG_PASSES
from utils.testing.figures import png_size
from utils.tflite import model as tflite_model

pytestmark = pytest.mark.slow
NOT_ON_TPU = {"LEAKY_RELU", "TILE", "RESHAPE", "DEQUANTIZE"}


def assert_all_mapped(report):
    ops = {op.name for op in report.ops}
    assert report.all_mapped, report.format()
    assert {"CONV_2D", "MAX_POOL_2D", "CONCATENATION", "RESIZE_NEAREST_NEIGHBOR", "QUANTIZE"} <= ops
    assert not NOT_ON_TPU & ops
    assert all(op.version <= 2 for op in report.ops if op.name == "RESIZE_NEAREST_NEIGHBOR")
    assert report.inputs == ["uint8[1, 416, 416, 3]"]
    assert all(o.startswith("uint8[1, ") for o in report.outputs)


def test_prelu_model_maps_completely(model_factory):
    report = edgetpu_check.check(model_factory("tiny_prelu_int8", ["--leaky", "prelu"], []))
    assert_all_mapped(report)
    assert "PRELU" in {op.name for op in report.ops}


def test_relu_variant_maps_completely(build_dir, tiny_cfg, model_factory):
    cfg = build_dir / "tiny-relu.cfg"
    cfg.write_text(tiny_cfg.read_text().replace("activation=leaky", "activation=relu"))
    weights = build_dir / "tiny-relu.weights"
    write_weights(weights, conv_layouts(parse_cfg(cfg)), np.random.default_rng(3))
    report = edgetpu_check.check(model_factory("tiny_relu_int8", [], ["--num-samples", "8"], cfg=cfg,
                                               weights_path=weights))  # mapping only: few samples do
    assert_all_mapped(report)


def test_keep_names_leaky_relu_as_first_unmappable(model_factory):
    path = model_factory("tiny_keep_int8", [], [])
    result = run_script("-m", "utils.edgetpu_check", str(path), "--strict")
    assert result.returncode == 1
    assert "First unmappable operation: LEAKY_RELU" in result.stdout
    report = edgetpu_check.check(path)
    cpu = [op for op in report.ops if not op.mapped]
    assert report.first_unmapped.name == "LEAKY_RELU" and len(cpu) > 20


def small_model(kind: str, path):
    """A tiny model breaking one Edge TPU rule, converted with TensorFlow."""
    import keras
    import tensorflow as tf
    shape = (None, 8, 8, 3) if kind == "dynamic" else (1, 8, 8, 3)
    x = inputs = keras.Input(batch_shape=shape)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    if kind == "leaky":
        x = keras.layers.LeakyReLU(0.1)(x)
    if kind == "resize_v3":
        x = keras.layers.Lambda(lambda t: tf.image.resize(t, (16, 16), "nearest"))(x)
    model = keras.Model(inputs, x)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([np.random.rand(1, 8, 8, 3).astype(np.float32)] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    path.write_bytes(converter.convert())
    return path


@pytest.mark.parametrize("kind, op, status", [
    ("ok", None, None),
    ("leaky", "LEAKY_RELU", "Operation not supported"),
    ("float", "CONV_2D", "Operation is working on an unsupported data type"),
    ("resize_v3", "RESIZE_NEAREST_NEIGHBOR", "Operation version not supported"),
    ("dynamic", "QUANTIZE", "Tensor has a dynamic size"),
])
def test_checker_verdicts(tmp_path, kind, op, status):
    report = edgetpu_check.check(small_model(kind, tmp_path / f"{kind}.tflite"))
    if op is None:
        assert report.all_mapped, report.format()
    else:
        assert (report.first_unmapped.name, report.first_unmapped.status) == (op, status), report.format()


def test_checker_recognises_compiled_model(tmp_path):
    model = tflite_model.load(small_model("ok", tmp_path / "ok.tflite"))
    from ai_edge_litert import schema_py_generated as schema
    model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = tflite_model.EDGETPU_CUSTOM_OP
    compiled = tmp_path / "ok_edgetpu.tflite"
    tflite_model.save(model, compiled)
    result = run_script("-m", "utils.edgetpu_check", str(compiled))
    assert result.returncode == 0 and "already compiled for the Edge TPU" in result.stdout


@pytest.mark.parametrize("name, args", [("tiny_prelu", ["--leaky", "prelu"]), ("tiny_keep", [])])
def test_int8_finds_what_float_finds(model_factory, name, args):
    h5 = model_factory(name, args)
    int8 = tflite_detections(model_factory(f"{name}_int8", args, []), sample_paths())
    reference = keras_detections(h5, sample_paths())
    for name in reference:
        missing, extra = match(reference[name], int8[name], 0.35, 0.5, 1.0)
        assert not missing and not extra, (name, missing, extra)


def test_metadata_is_embedded(model_factory):
    from utils.yolo.meta import METADATA_NAME, YoloMeta
    data = tflite_model.read_bytes(model_factory("tiny_keep_int8", [], []))
    meta = YoloMeta.from_json(tflite_model.read_metadata(data, METADATA_NAME).decode())
    assert [h.mask for h in meta.heads] == [[3, 4, 5], [0, 1, 2]] and meta.output_range == (-6.0, 10.0)


def test_quantizer_reports(model_factory, tmp_path):
    h5 = model_factory("tiny_keep")
    out = tmp_path / "q.tflite"
    result = run_script("keras_to_tflite_quant.py", str(h5), str(out), "--dataset", *map(str, sample_paths()[:2]),
                        "--num-samples", "8", check=True)
    calibrating = [line for line in result.stderr.splitlines() if line.startswith("calibrating")]
    assert "\r" not in result.stderr and 1 <= len(calibrating) <= 11, result.stderr  # a line per tenth in logs
    # A CPU model (leaky ReLU kept): the Edge TPU verdict is a short note, and the last thing printed.
    assert result.stdout.rstrip().splitlines()[-3].startswith("Edge TPU: a CPU model."), result.stdout
    assert result.stdout.rstrip().endswith(f"python -m utils.edgetpu_check {out}"), result.stdout
    assert "--leaky prelu" in result.stdout and "Number of operations" not in result.stdout
    assert "head 13x13: mean |d|" in result.stdout and "peak memory" in result.stdout
    assert "Detections of the int8 model (xnnpack kernels) against the float model on 2 images" in result.stdout


def test_a_stretch_model_calibrates_stretched_on_a_data_files_train_list(model_factory, tmp_path):
    """--dataset obj.data calibrates on its train= list; a stretch model's samples are stretched, as
    inference.py will feed it, and the mode travels into the .tflite."""
    import cv2

    from utils.quantize import calibration
    from utils.yolo.letterbox import letterbox_float
    from utils.yolo.meta import METADATA_NAME, YoloMeta
    h5 = model_factory("tiny_keep_stretch", ["--resize", "stretch"])
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in sample_paths()[:2]))
    (tmp_path / "obj.data").write_text("classes = 80\ntrain = train.txt\nvalid = train.txt\nnames = coco.names\n")
    out = tmp_path / "q.tflite"
    result = run_script("keras_to_tflite_quant.py", str(h5), str(out), "--dataset", str(tmp_path / "obj.data"),
                        "--num-samples", "4", check=True)
    assert "dataset: 2 images found" in result.stdout and "resize: stretch" in result.stdout, result.stdout
    meta = YoloMeta.from_json(tflite_model.read_metadata(tflite_model.read_bytes(out), METADATA_NAME).decode())
    assert meta.resize == "stretch"
    samples = calibration.Calibration(calibration.plan(sample_paths()[:1], 1, False))
    tensor = next(iter(samples.dataset((416, 416), "stretch", lambda items: items)()))[0]
    assert np.array_equal(tensor, letterbox_float(cv2.imread(str(sample_paths()[0])), (416, 416), "stretch"))


@pytest.fixture
def not_heads(tmp_path):
    import keras
    inputs = keras.Input(batch_shape=(1, 32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)))
    path = tmp_path / "dense.h5"
    model.save(path)
    return path


def test_bad_inputs(tmp_path, model_factory, not_heads):
    h5 = model_factory("tiny_keep")
    out = tmp_path / "out.tflite"
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not a model" * 100)
    assert_user_error(run_script("keras_to_tflite_quant.py", str(garbage), str(out)), "garbage.h5", "not a Keras model")
    assert_user_error(run_script("keras_to_tflite_quant.py", str(not_heads), str(out)), "dense.h5", "not YOLO heads")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(run_script("keras_to_tflite_quant.py", str(h5), str(out), "--dataset", str(empty)), "empty", "no images")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8 truncated")
    assert_user_error(run_script("keras_to_tflite_quant.py", str(h5), str(out), "--dataset", str(broken)), "could be decoded")
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_unreadable_images_are_skipped_and_counted(tmp_path, model_factory):
    h5 = model_factory("tiny_keep")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "bad.jpg").write_bytes(b"nope")
    (mixed / "dog.jpg").write_bytes(sample_paths()[0].read_bytes())
    result = run_script("keras_to_tflite_quant.py", str(h5), str(tmp_path / "m.tflite"), "--dataset", str(mixed),
                        "--num-samples", "4", check=True)
    assert "bad.jpg: cannot be decoded, skipped" in result.stderr
    assert "calibrated on 1 image + 1 crop/flip of it, 768x576 to 768x576 pixels (1 unreadable, skipped)" \
        in result.stdout


def test_model_without_sidecar_takes_anchors(tmp_path, model_factory):
    import shutil
    h5 = tmp_path / "bare.h5"
    shutil.copy(model_factory("tiny_keep"), h5)
    out = tmp_path / "bare.tflite"
    assert_user_error(run_script("keras_to_tflite_quant.py", str(h5), str(out)), "bare_yolo.json", "--anchors")
    from conftest import MODEL_DATA
    run_script("keras_to_tflite_quant.py", str(h5), str(out), "--float", "--anchors",
               str(MODEL_DATA / "yolov3-tiny_anchors.txt"), check=True)
    from utils.yolo.meta import METADATA_NAME, YoloMeta
    meta = YoloMeta.from_json(tflite_model.read_metadata(tflite_model.read_bytes(out), METADATA_NAME).decode())
    assert [h.mask for h in meta.heads] == [[3, 4, 5], [0, 1, 2]] and meta.classes == 80


@pytest.mark.slow
def test_quantization_debugger_ranks_layers(model_factory, tmp_path):
    """TensorFlow Lite's debugger, through our CLI and the quantizer's --debug-layers: every layer's
    RMS error in 8-bit steps, at least rounding's 0.29, worst first."""
    h5 = model_factory("tiny_keep")
    samples = str(MODEL_DATA / "samples")
    alone = run_script("-m", "utils.quant_debug", str(h5), str(model_factory("tiny_keep_int8", [], [])),
                       "--dataset", samples, "--num-samples", "4", "--top", "40", "--plot", str(tmp_path / "alone.png"))
    assert alone.returncode == 0, alone.stderr
    rows = [line.split() for line in alone.stdout.splitlines() if line.strip().endswith("(CONV_2D)")]
    steps = [float(row[0]) for row in rows]
    assert len(rows) == 13 and steps == sorted(steps, reverse=True) and min(steps) >= 0.25, alone.stdout
    assert "Output heads of" in alone.stdout and "head 13x13" in alone.stdout
    # The two heads by their grids and names, not TensorFlow's "StatefulPartitionedCall_1:1".
    assert {" ".join(row[4:7]) for row in rows if row[4] == "head"} == {"head 13x13 (yolo_0)", "head 26x26 (yolo_1)"}
    assert "StatefulPartitionedCall" not in alone.stdout
    # It speaks at once, then once per pass; the chart has a bar for each of the 32 layers.
    assert alone.stderr.splitlines()[0].startswith(f"loading {h5} (TensorFlow)"), alone.stderr
    assert [line for line in alone.stderr.splitlines() if line.endswith(" 4/4")] == [f"{label} 4/4" for label in DEBUG_PASSES]
    assert png_size(tmp_path / "alone.png") == chart_size(32)
    quantizer = run_script("keras_to_tflite_quant.py", str(h5), str(tmp_path / "m.tflite"), "--dataset", samples,
                           "--num-samples", "4", "--debug-layers", "3")
    assert quantizer.returncode == 0, quantizer.stderr
    assert "the 3 largest" in quantizer.stdout
    assert quantizer.stdout.splitlines()[1] == f"loading {h5} (TensorFlow)"  # said before TensorFlow starts
    assert f"wrote {tmp_path / 'm_layers.png'} (every layer's int8 error, in network order)" in quantizer.stdout
    assert png_size(tmp_path / "m_layers.png") == chart_size(32)


def test_the_script_is_the_library_function(model_factory, tmp_path):
    """keras_to_tflite_quant.py only parses and prints: quantize_model writes the same bytes and
    returns the figures the script prints."""
    from utils.quantize import ranges
    from utils.quantize.pipeline import Settings, quantize_model
    h5 = model_factory("tiny_keep")
    script = model_factory("tiny_keep_int8_minmax8", [], ["--calibration", "minmax", "--num-samples", "8"])
    out = tmp_path / "q.tflite"
    report = quantize_model(h5, out, sample_paths(), Settings(num_samples=8, method=ranges.parse_method("minmax")))
    assert out.read_bytes() == script.read_bytes()
    printed = script.with_suffix(".stdout").read_text()
    assert report.summary().split(" in ")[0] == f"wrote {out} (full int8, uint8 input/output; {report.size_mib:.2f} MiB)"
    assert report.summary().split(", calibrated on ")[1] in printed
    assert [grid for grid, _, _ in report.head_errors] == [(13, 13), (26, 26)]
    assert f"{report.fidelity.loose_matched}/{report.fidelity.loose_total} matched" in printed
    assert report.edgetpu.keeps_leaky_relu and report.edgetpu.brief().split("The full report")[0] in printed


def test_calibration_auto_chooses_on_held_out_images(model_factory, tmp_path):
    """auto holds out a quarter of the images, scores each candidate under both kernel sets, keeps
    the best and says what it cost."""
    from utils.quantize.auto import CANDIDATES
    from utils.testing.image_sets import clip_frames
    h5 = model_factory("tiny_keep")
    images = [*map(str, sample_paths()[:2]), *map(str, clip_frames(tmp_path, every=4))]  # 8 images
    result = run_script("keras_to_tflite_quant.py", str(h5), str(tmp_path / "auto.tflite"), "--dataset", *images,
                        "--num-samples", "8", "--calibration", "auto", check=True)
    table = result.stdout.split("calibration auto: 6 images calibrated, 2 held out")[1].splitlines()
    lines = table[1:1 + len(CANDIDATES)]
    scored = [line.replace("*", " ").split() for line in lines]  # method xnnpack A / B builtin C / D
    assert [row[0] for row in scored] == list(CANDIDATES), result.stdout
    assert all(0 <= float(row[i]) <= 1 for row in scored for i in (2, 4, 6, 8)), result.stdout
    chosen = [row[0] for line, row in zip(lines, scored) if "*" in line]
    assert len(chosen) == 1 and f"chose {chosen[0]} in " in table[1 + len(CANDIDATES)], result.stdout
    assert f"activation ranges: {chosen[0]} (" in result.stdout  # too few images: tests/test_bad_input.py
