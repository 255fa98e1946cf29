# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
CFG ?= model_data/yolov3-tiny.cfg

.PHONY: demo test test-fast lint coverage weights bench clean darknet test-servers compiler browser check-arm64

$(VENV)/.installed: requirements-infer.txt requirements-convert.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Inference on tflite_runtime alone (numpy 1.x, no LiteRT): the tests and bench/kernels.py use it.
.venv-tflite-runtime/.installed: requirements-tflite-runtime.txt
	$(PYTHON) -m venv --clear .venv-tflite-runtime
	.venv-tflite-runtime/bin/python -m pip install --quiet -r requirements-tflite-runtime.txt "pytest>=8,<10"
	touch $@

# The TFLite Task Library (tflite-support 0.4.4, numpy 1.x): the tests run --outputs detections models in it.
.venv-task-library/.installed: requirements-task-library.txt
	$(PYTHON) -m venv --clear .venv-task-library
	.venv-task-library/bin/python -m pip install --quiet -r requirements-task-library.txt
	touch $@

weights: $(VENV)/.installed
	$(PY) -m utils.fetch_weights

# Two models from the same weights: -cpu keeps leaky ReLU (fast on a CPU), -tpu has it as PReLU
# (every op on the Edge TPU; edgetpu_compiler turns it into -tpu_edgetpu.tflite). Each file is made
# again only when what it is made from changes (the cfg, the converter's or quantizer's code).
CONVERT_CODE := convert.py $(wildcard utils/darknet/*.py)
QUANTIZE_CODE := keras_to_tflite_quant.py $(wildcard utils/quantize/*.py)

demo: $(OUT)/dog_detections.jpg $(OUT)/yolov3-tiny-tpu.tflite

$(OUT)/yolov3-tiny-cpu.h5: $(CFG) $(CONVERT_CODE) | $(VENV)/.installed
	$(PY) convert.py $(CFG) "$$($(PY) -m utils.fetch_weights)" $@

$(OUT)/yolov3-tiny-tpu.h5: $(CFG) $(CONVERT_CODE) | $(VENV)/.installed
	$(PY) convert.py $(CFG) "$$($(PY) -m utils.fetch_weights)" $@ --leaky prelu

$(OUT)/%.tflite: $(OUT)/%.h5 $(QUANTIZE_CODE) | $(VENV)/.installed
	$(PY) keras_to_tflite_quant.py $< $@ --dataset model_data/samples

$(OUT)/dog_detections.jpg: $(OUT)/yolov3-tiny-cpu.tflite model_data/samples/dog.jpg | $(VENV)/.installed
	$(PY) inference.py --model $< --classes model_data/coco.names --image model_data/samples/dog.jpg \
		--output $@ --no-display

# Debian's darknet is a reference for the tests; without root or apt they skip what needs it
# (under CI=true a failed install is an error).
darknet:
	@command -v darknet >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq darknet >/dev/null; \
	  else false; fi; } || { [ "$${CI:-}" != true ] && echo "warning: darknet not installed; tests against it will be skipped"; }

# GStreamer's RTSP server: the loopback camera of the stream tests (utils/testing/loopback/rtsp_server.py).
RTSP_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav
test-servers:
	@/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer" \
	  2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(RTSP_PACKAGES) >/dev/null; \
	  else false; fi; } || { [ "$${CI:-}" != true ] && echo "warning: GStreamer's RTSP server not installed; the RTSP tests will be skipped"; }

# Debian's Chromium, headless: the live view's browser test (tests/test_live_view.py) drives it with Playwright.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else false; fi; } || { [ "$${CI:-}" != true ] && echo "warning: chromium not installed; the live view's browser test will be skipped"; }

# A C compiler builds the stand-in Edge TPU library (utils/testing/standin_edgetpu.c) the Edge TPU tests use.
compiler:
	@command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; \
	  else false; fi; } || { [ "$${CI:-}" != true ] && echo "warning: no C compiler; the Edge TPU tests will be skipped"; }

# Two workers (pytest-xdist); built models are kept between runs in ~/.cache/tinyyolo-edgetpu/test-models
# (tests/model_cache.py: keyed by the code and inputs, so any change rebuilds).
PYTEST := $(PY) -m pytest -q -n 2 --dist worksteal

test: $(VENV)/.installed darknet test-servers compiler browser
	$(PYTEST) tests

test-fast: $(VENV)/.installed compiler
	$(PYTEST) -m "not slow" tests

# ruff, as configured in pyproject.toml (CI runs it before the tests).
lint: $(VENV)/.installed
	$(PY) -m ruff check .

# Line coverage of utils/, child processes (the scripts) included. The model cache is off: a
# cached model would skip the conversion code it measures.
coverage: $(VENV)/.installed darknet test-servers compiler
	rm -f .coverage .coverage.*
	TINYYOLO_TEST_CACHE=off $(PY) -m coverage run -m pytest -q -n 2 tests
	$(PY) -m coverage combine -q
	$(PY) -m coverage report --format=markdown

# int8 inference on Raspberry Pi OS 64-bit under qemu-user: agreement with Darknet on arm64 and on this
# machine, value differences and each kernel set's rounding (as root on x86-64 Debian/Ubuntu; about
# 15 minutes with the root kept): CPU=cortex-a72 is a Pi 4, CPU=cortex-a76 a Pi 5; METHODS scores
# calibration methods too (bench/defaults.py's syntax, e.g. METHODS="mse minmax auto").
CPU ?= cortex-a72
METHODS ?= mse
check-arm64: $(VENV)/.installed .venv-tflite-runtime/.installed
	$(PY) bench/check_arm64.py --cpu $(CPU) --methods $(METHODS)

bench: $(VENV)/.installed .venv-tflite-runtime/.installed darknet
	$(PY) bench/bench.py
	$(PY) bench/resize_modes.py
	$(PY) bench/detection_tail.py
	$(PY) bench/fidelity.py
	$(PY) bench/kernels.py
	$(PY) bench/defaults.py
	$(PY) bench/video_loop.py
	$(PY) bench/models.py

clean:
	rm -rf $(OUT)
