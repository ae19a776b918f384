#!/usr/bin/env bash
# Install mmcv 2.1.0 with its compiled ops into the environment of $PIP.
#
# With FIND_LINKS="--find-links DIR" a prebuilt wheel from DIR is used (make install
# WHEELS=DIR). Otherwise mmcv is built from its PyPI sdist: MMCV_WITH_OPS=1,
# --no-build-isolation for the download too (pip prepares the sdist's metadata, and in an
# isolated env it would take the newest setuptools, which has no pkg_resources),
# setuptools<81 (its setup.py imports pkg_resources), and with torch >= 2.14 the sdist's
# hard-coded -std=c++17 raised to -std=c++20, which torch's headers need. About 30 min on 2 cores.
# With a CUDA toolkit and a CUDA torch, the CUDA kernels are built too: set
# TORCH_CUDA_ARCH_LIST (e.g. 9.0 for H100) and FORCE_CUDA=1 to build them without a GPU.
set -euo pipefail
PIP=${PIP:-python -m pip}
FIND_LINKS=${FIND_LINKS:-}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
PY=${PIP% -m pip}

if $PY -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
    echo "mmcv $MMCV_VERSION with ops already installed"
    exit 0
fi
if [ -n "$FIND_LINKS" ] && $PIP install -q --only-binary mmcv $FIND_LINKS "mmcv==$MMCV_VERSION"; then
    $PY -c "import mmcv.ops" && exit 0
    echo "prebuilt mmcv wheel does not import; building from source" >&2
fi

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
$PIP download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build"
tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
src="$build/mmcv-$MMCV_VERSION"
if $PY -c "import sys, torch; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 14))"; then
    grep -q -- '-std=c++17' "$src/setup.py" || { echo "mmcv setup.py has no -std=c++17 to raise" >&2; exit 1; }
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
fi
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} $PIP install --no-build-isolation "$src"
$PY -c "import mmcv.ops; print('built mmcv', mmcv.__version__, 'with ops')"
