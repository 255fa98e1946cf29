"""The rounding of each kernel set, found from LiteRT's own intermediate tensors, and the numpy int8
engine that reproduces a kernel set's heads bit for bit from it (bench/check_arm64.py's table 3)."""
from __future__ import annotations

import numpy as np
import pytest

from utils.media.images import read_image
from utils.quantize import kernel_rounding, numpy_kernels
from utils.quantize.sensitivity import step_mover, step_sensitivity, unmatched
from utils.runtime.interpreters import interpreter_api
from utils.yolo.detector import Detector
from utils.yolo.types import Detections


def test_quantize_multiplier_is_tflites():
    multiplier, shift = numpy_kernels.quantize_multiplier(np.array([0.5, 0.75, 1.9, 1e-12]))
    assert multiplier.tolist() == [1 << 30, 3 << 29, round(0.95 * (1 << 31)), 0]
    assert shift.tolist() == [0, 0, 1, 0]


def test_the_schemes_differ_where_their_roundings_do():
    # -226.48 -> -226 in the first rounding; -226 / 4 = -56.5 is a tie: away from zero gives -57, up gives -56.
    x, real = np.array([-298]), np.float32(0.19)
    assert numpy_kernels.rescale(x, real, "double").item() == -57
    assert numpy_kernels.rescale(x, real, "double-up").item() == -56
    assert numpy_kernels.rescale(x, real, "single").item() == numpy_kernels.rescale(x, real, "fp32").item() == -57
    # A tie of the float product: fp32 rounds half to even, the integer schemes up or away.
    assert numpy_kernels.rescale(np.array([5]), np.float32(0.5), "fp32").item() == 2
    assert numpy_kernels.rescale(np.array([5]), np.float32(0.5), "double").item() == 3


def tensors_of(model, kernels, tensor, tmp_path):
    everything = tmp_path / f"{model.stem}-all.tflite"
    kernel_rounding.with_all_outputs(model, everything)
    interpreter = interpreter_api("litert").interpreter(kernels, model_path=str(everything))
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    found = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    found[interpreter.get_input_details()[0]["name"]] = tensor
    return found


@pytest.mark.parametrize("leaky", ["keep", "prelu"])
def test_each_kernel_set_has_one_scheme_and_numpy_reproduces_its_heads(model_factory, samples, tmp_path, leaky):
    model = model_factory(f"tiny_{leaky}_int8", [] if leaky == "keep" else ["--leaky", "prelu"], [])
    tensor = Detector(model).adapters[0].prepare(read_image(samples[0]))[0].copy()
    graph = numpy_kernels.Graph(model)
    heads = [graph.name(i) for i in graph.graph.outputs]
    for kernels in ("xnnpack", "builtin", "reference"):
        tensors = tensors_of(model, kernels, tensor, tmp_path)
        matches = kernel_rounding.explain(model, tensors)
        assert {m.op for m in matches} == {"CONV_2D", "LEAKY_RELU" if leaky == "keep" else "PRELU"}
        assert len(matches) == 24  # 13 convolutions, 11 activations
        assert kernel_rounding.reproduces(model, tensors, kernel_rounding.by_op(matches))
        schemes = kernel_rounding.by_op(matches)
        assert all(not scheme.startswith("~") for scheme in schemes.values()), (kernels, schemes)
        if kernels == "reference":  # TFLite's reference kernels are gemmlowp's, on every machine
            assert set(schemes.values()) == {"double"}
        simulated = numpy_kernels.run(graph, tensor, schemes)
        for name in heads:
            np.testing.assert_array_equal(simulated[name], tensors[name], err_msg=f"{kernels} {name}")


def test_unmatched_pairs_same_class_boxes():
    a = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0.9, 0.8], np.float32),
                   np.array([1, 2]))
    moved = Detections(np.array([[1, 0, 11, 10], [20, 20, 30, 30]], np.float32), np.array([0.9, 0.8], np.float32),
                       np.array([1, 3]))
    assert unmatched(a, a) == 0
    assert unmatched(a, moved) == 2  # the second changed class: one vanished, one appeared
    assert unmatched(a, Detections.empty()) == 2


def test_step_sensitivity_is_zero_when_no_value_moves(model_factory, samples):
    model = model_factory("tiny_keep_int8", [], [])
    detector = Detector(model)
    prepared = [detector.adapters[0].prepare(read_image(p)) for p in samples[:1]]
    inputs, boxes = [t.copy() for t, _ in prepared], [b for _, b in prepared]
    schemes = {"CONV_2D": "fp32", "LEAKY_RELU": "q8"}
    found = len(detector.detect(read_image(samples[0])))
    assert step_sensitivity(model, inputs, boxes, detector.meta, schemes, share=0.0, seeds=1) == (0.0, found)


def test_step_mover_moves_the_share_asked_by_one_step():
    values = np.zeros(100_000, np.int64)
    moved = step_mover(np.random.default_rng(0), 0.1)(values)
    assert set(np.unique(moved)) == {-1, 0, 1}
    assert abs((moved != 0).mean() - 0.1) < 0.005 and abs(moved.mean()) < 0.005
