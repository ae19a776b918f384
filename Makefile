# mmcast — install, demo and test targets.
#   make install   create .venv (if missing) and install the OpenMMLab stack + mmcast
#   make demo      the three CAST stages, the labels-only baseline and Guided Distillation on the bundled toy data
#   make test      the test suite
#   make test-gpu  the GPU suite (tests/gpu): fails, with one line, without a CUDA device
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Prebuilt wheels (mmcv built for torch 2.14.1) when the shared folder exists; else build from source.
WHEELS ?= $(wildcard ../shared/wheels)
FIND_LINKS := $(if $(WHEELS),--find-links $(abspath $(WHEELS)),)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.mmcast-installed

.PHONY: install demo test test-gpu clean-venv

install: $(STAMP)

$(STAMP): setup.py requirements/runtime.txt requirements/tests.txt requirements/sam2.txt tools/install/install_mmcv.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip 'setuptools<81' wheel
	$(PIP) install -q $(TORCH_SPEC)
	PIP="$(PIP)" FIND_LINKS="$(FIND_LINKS)" bash tools/install/install_mmcv.sh
	$(PIP) install -q openmim 'mmdet==3.3.0' 'mmpretrain==1.2.0' -r requirements/runtime.txt
	$(PIP) install -q 'setuptools>=77,<81'
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-build-isolation -r requirements/sam2.txt
	$(PIP) install -q -r requirements/tests.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcast, mmcv.ops, mmdet, sam2; print('mmcast', mmcast.__version__, 'ready')"
	touch $(STAMP)

demo: install
	$(PY) tools/cast_pipeline.py toy --work-dir work_dirs/cast_toy --seeds 0 1 2 --methods cast gd --student-init source-pretrained --jobs 2
	$(PY) tools/analysis/plot_pipeline.py work_dirs/cast_toy --out-dir work_dirs/cast_toy/figures
	$(PY) tools/analysis/show_predictions.py work_dirs/cast_toy --seed 0 \
		--out work_dirs/cast_toy/figures/predictions_seed0.png

test: install
	$(PY) -m pytest -q tests

# extra pytest arguments via ARGS, e.g. make test-gpu ARGS='-k stage_steps'
test-gpu: install
	$(PY) tests/gpu/run.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
