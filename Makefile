# Two commands on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out
CFG ?= model_data/yolov3-tiny.cfg
LEAKY ?= keep

.PHONY: demo test test-fast weights bench clean

$(VENV)/.installed: requirements-infer.txt requirements-convert.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

weights: $(VENV)/.installed
	$(PY) -m utils.fetch_weights

demo: $(VENV)/.installed
	@mkdir -p $(OUT)
	$(PY) convert.py $(CFG) "$$($(PY) -m utils.fetch_weights)" $(OUT)/yolov3-tiny.h5 --leaky $(LEAKY)
	$(PY) keras_to_tflite_quant.py $(OUT)/yolov3-tiny.h5 $(OUT)/yolov3-tiny.tflite --dataset model_data/samples
	$(PY) inference.py --model $(OUT)/yolov3-tiny.tflite --classes model_data/coco.names \
		--image model_data/samples/dog.jpg --output $(OUT)/dog_detections.jpg --no-display

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow" tests

bench: $(VENV)/.installed
	$(PY) bench/bench.py
	$(PY) bench/fidelity.py

clean:
	rm -rf $(OUT)
