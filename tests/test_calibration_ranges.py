"""Activation ranges for int8 (utils/quantize/ranges.py): the methods on known histograms, and the
quantizer's two-step path, which must equal TensorFlow's own one-step conversion for min/max."""
import argparse

import numpy as np
import pytest

from conftest import sample_paths
from utils.quantize import ranges
from utils.quantize.ranges import Histogram, Method, mse_range, parse_method, percentile_range


def histogram_of(values: np.ndarray) -> Histogram:
    histogram = Histogram(float(values.min()), float(values.max()))
    histogram.add(values)
    return histogram


def test_parse_method():
    assert parse_method("minmax") == Method("minmax") and parse_method("MSE") == Method("mse")
    assert parse_method("percentile") == Method("percentile", ranges.DEFAULT_PERCENTILE)
    assert parse_method("percentile:99.9") == Method("percentile", 99.9) and str(Method("percentile", 99.9)) == \
        "percentile:99.9"
    assert parse_method("percentile:100") == Method("percentile", 100.0)
    for bad in ("percentile:50", "percentile:100.01", "percentile:x", "kl", "mse:2", ""):
        with pytest.raises(ValueError):
            parse_method(bad)


def test_auto_is_a_calibration_choice_and_holds_out_a_quarter():
    from utils.quantize import auto
    assert ranges.calibration_argument(" Auto ") == auto.AUTO and ranges.calibration_argument("mse") == Method("mse")
    with pytest.raises(argparse.ArgumentTypeError):
        ranges.method_argument("auto")  # the debugger's flag takes methods only
    images = [f"{i}.jpg" for i in range(9)]
    calibrate, held = auto.split(images)
    assert held == ["2.jpg", "6.jpg"] and calibrate == [p for p in images if p not in held]
    assert [str(m) for m in map(parse_method, auto.CANDIDATES)][0] == ranges.DEFAULT_METHOD


def test_percentile_clips_both_tails_and_keeps_zero():
    values = np.r_[np.linspace(0, 10, 100_000), -50.0, 80.0]  # two outliers
    low, high = percentile_range(histogram_of(values), 99.99)
    assert low == 0.0 or low == pytest.approx(0, abs=0.07)
    assert high == pytest.approx(10, abs=0.07)
    assert percentile_range(histogram_of(values), 100) == (-50.0, 80.0)
    positive = np.linspace(1, 5, 1000)  # all above zero: the range still includes zero
    assert percentile_range(histogram_of(positive), 99)[0] == 0.0


def quantization_error(values: np.ndarray, low: float, high: float) -> float:
    """Mean squared error of 8-bit affine quantization over [low, high], simulated."""
    step = (high - low) / 255
    return float(np.mean((np.clip(np.round((values - low) / step), 0, 255) * step + low - values) ** 2))


@pytest.mark.parametrize("outliers", [(12.0, -9.0), (60.0,), ()])
def test_mse_range_is_the_least_error_of_any_range(outliers):
    """Clipping weighed against rounding: the chosen range quantizes the values with no more error
    (within 2 %) than the best of a grid of ranges, min/max among them."""
    values = np.r_[np.random.default_rng(0).normal(0, 1, 200_000), outliers]
    low, high = mse_range(histogram_of(values))
    grid = [(a, b) for a in np.linspace(values.min(), -0.5, 30) for b in np.linspace(0.5, values.max(), 30)]
    best = min(quantization_error(values, a, b) for a, b in grid)
    assert quantization_error(values, low, high) <= 1.02 * best
    assert quantization_error(values, low, high) < quantization_error(values, values.min(), values.max()) or \
        not outliers


@pytest.mark.slow
def test_minmax_two_step_path_equals_tensorflows_one_step_conversion(model_factory):
    """The quantizer calibrates, then quantizes (so that other methods can move ranges between the
    two steps); with min/max ranges every tensor must equal TensorFlow's own conversion."""
    from utils.media.images import find_images
    from utils.quantize import calibration
    from utils.quantize import quantizer as quantize
    from utils.runtime.keras_engine import load_keras_model
    from utils.tflite import model as tflite_model
    h5 = model_factory("tiny_keep")
    model = load_keras_model(h5)
    meta = quantize.model_meta(model, h5)
    samples = calibration.Calibration(calibration.plan(find_images([str(p) for p in sample_paths()]), 6))
    dataset = samples.dataset(meta.input_size, meta.resize, lambda items: items)
    ours = tflite_model.unpack(quantize.to_tflite(model, dataset, "uint8", method=Method("minmax")))
    with quantize.converter_for(model, dataset, "uint8") as converter:
        theirs = tflite_model.unpack(quantize._convert(converter))
    a, b = ours.subgraphs[0], theirs.subgraphs[0]
    assert [op.opcodeIndex for op in a.operators] == [op.opcodeIndex for op in b.operators]
    assert len(a.tensors) == len(b.tensors)
    for x, y in zip(a.tensors, b.tensors):
        assert x.name == y.name and x.type == y.type
        assert np.array_equal(x.quantization.scale, y.quantization.scale), x.name
        assert np.array_equal(x.quantization.zeroPoint, y.quantization.zeroPoint), x.name
        assert np.array_equal(ours.buffers[x.buffer].data, theirs.buffers[y.buffer].data), x.name


@pytest.mark.slow
def test_percentile_model_keeps_every_op_on_the_edge_tpu(model_factory):
    """Moving ranges changes scales only: the PReLU model stays all-mapped, with the same op types,
    and the report names the method."""
    from utils.quantize import edgetpu_check
    minmax = edgetpu_check.check(model_factory("tiny_prelu_int8", ["--leaky", "prelu"], []))
    path = model_factory("tiny_prelu_int8_percentile", ["--leaky", "prelu"], ["--calibration", "percentile:99.99"])
    report = edgetpu_check.check(path)
    assert report.all_mapped, report.format()
    assert sorted(op.name for op in report.ops) == sorted(op.name for op in minmax.ops)
    stdout = path.with_suffix(".stdout")
    assert "activation ranges: percentile:99.99 (each tensor's 99.99th percentile, both tails)" in stdout.read_text()
