# mmcast — install, demo and test targets.
#   make install   create .venv (if missing) and install the OpenMMLab stack + mmcast
#   make demo      the three CAST stages, the labels-only baseline and Guided Distillation on the bundled toy data
#   make quickstart  every stage on small toy data in about five minutes (one seed, short schedules)
#   make docs      the documentation (MkDocs) into site/
#   make test      the test suite (mmcast's tests and the SwinMTL project's)
#   make test-gpu  the GPU suite (tests/gpu): fails, with one line, without a CUDA device
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# A folder of prebuilt wheels (e.g. mmcv 2.1.0 built for torch 2.14.1): make install WHEELS=DIR;
# without one, mmcv is built from its PyPI sdist.
WHEELS ?=
FIND_LINKS := $(if $(WHEELS),--find-links $(abspath $(WHEELS)),)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.mmcast-installed

.PHONY: install demo test test-gpu clean-venv quickstart docs

install: $(STAMP)

# torch stays at $(TORCH_SPEC) in every step after the first (mmcv's ops are built against it): timm and
# sam2 ask for torch, and openmim's openxlab pins an old setuptools that would make pip pick an older torch.
$(STAMP): setup.py requirements/runtime.txt projects/swinmtl/requirements.txt requirements/tests.txt requirements/sam2.txt requirements/sam3.txt tools/install/install_mmcv.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip 'setuptools<81' wheel
	$(PIP) install -q $(TORCH_SPEC)
	PIP="$(PIP)" FIND_LINKS="$(FIND_LINKS)" bash tools/install/install_mmcv.sh
	$(PIP) install -q $(TORCH_SPEC) openmim 'mmdet==3.3.0' 'mmpretrain==1.2.0' -r requirements/runtime.txt \
		-r projects/swinmtl/requirements.txt
	$(PIP) install -q 'setuptools>=77,<81'
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-build-isolation $(TORCH_SPEC) -r requirements/sam2.txt
	$(PIP) install -q $(TORCH_SPEC) -r requirements/sam3.txt
	$(PIP) install -q $(TORCH_SPEC) -r requirements/tests.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcast, mmcv.ops, mmdet, mmseg, sam2, sam3, timm; print('mmcast', mmcast.__version__, 'ready')"
	touch $(STAMP)

demo: install
	$(PY) tools/cast_pipeline.py toy --work-dir work_dirs/cast_toy --seeds 0 1 2 --methods cast gd --student-init source-pretrained --jobs 2
	$(PY) tools/analysis/plot_pipeline.py work_dirs/cast_toy --out-dir work_dirs/cast_toy/figures
	$(PY) tools/analysis/show_predictions.py work_dirs/cast_toy --seed 0 \
		--out work_dirs/cast_toy/figures/predictions_seed0.png

# every stage on small toy data, one seed, short schedules (the README's first run, about five minutes)
quickstart: install
	$(PY) tools/cast_pipeline.py toy --work-dir work_dirs/cast_toy_quick --data-root data/quick \
		--toy-sizes 40 10 100 --toy-image-size 64 128 \
		--iters pretrain=150 1a=50 1b=50 2=100 3=50 --seeds 0 --jobs 2

# the documentation (MkDocs) into site/
docs: install
	$(PY) tools/docs/update_tables.py --check
	$(PY) tools/docs/doc_commands.py
	$(VENV)/bin/mkdocs build --strict --site-dir site

# two pytest-xdist workers, one thread each; TEST_WORKERS=0 runs the suite in one process.
# The suite starts hundreds of Python processes: let them cache mmcast's bytecode.
# It is mmcast's tests and the SwinMTL project's (projects/swinmtl/tests).
TEST_WORKERS ?= 2
test: install
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder tests projects/swinmtl/tests

# extra pytest arguments via ARGS, e.g. make test-gpu ARGS='-k stage_steps'
test-gpu: install
	$(PY) tests/gpu/run.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
