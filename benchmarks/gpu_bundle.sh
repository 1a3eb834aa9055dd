#!/usr/bin/env bash
# Packs TensorFlow (GPU build) for the device tool's `nvidia-h200` machine, in parts that
# each fit one call's 64 MiB working tree.
#
# That machine's image (Python 3.12, CUDA 13, PyTorch, JAX) has no TensorFlow and no Keras,
# and reaches no package index; TensorFlow's wheel alone is 572 MB. This script, run here
# (it downloads), builds one directory `site/` holding:
#   - tensorflow (the cp312 GPU wheel, less its 430 MB of C++ headers), keras and the pure
#     or small Python packages they need that the image lacks or holds in untested versions;
#   - the CUDA 12 libraries TensorFlow loads by name and the image lacks: cudart and
#     cuBLAS(Lt) 12 (real), ptxas and libdevice (XLA), and empty stand-ins named
#     libcufft.so.11, libcusolver.so.11, libcusparse.so.12 (TensorFlow registers the GPU only
#     if every one of its libraries opens; an MLP calls none of these three). cuDNN 9 is the
#     image's own.
# then compresses it (zstd -17 --long=27: 605 MB from 2.0 GB, 7 min on 2 cores) and splits it
# into 60 MiB parts, with the zstd binary beside them, under .gpu/ (ignored by git):
#
#   bash benchmarks/gpu_bundle.sh            # -> .gpu/p00 .. .gpu/p09, .gpu/zstd
#
# On the machine, one `run` per part, carrying `.gpu/pNN` (about 3-6 s each once warm):
#   mkdir -p /tmp/chunks && mv .gpu/pNN /tmp/chunks/
# and with the last part (carry also `.gpu/zstd`), unpack it (4 s) and run the cells:
#   cat /tmp/chunks/p?? | .gpu/zstd -d --long=27 -q | tar -C /tmp -xf -
#   SITE=/tmp/site OUT=$OUT BUDGET=... bash benchmarks/gpu_cells.sh
# (2026-12-04: the GPU registered and XLA compiled for it with exactly this.)
set -eu
TF=${TF:-2.21.0}
WORK=${WORK:-/tmp/fitpipe-gpu-bundle}
DEST=${DEST:-$(cd "$(dirname "$0")/.." && pwd)/.gpu}
PY_PACKAGES="keras==3.15.1 namex==0.1.0 optree==0.20.0 astunparse==1.6.3 gast==0.7.0
google-pasta==0.2.0 termcolor==3.3.0 ml_dtypes==0.7.0 protobuf==7.36.2 h5py==3.14.0
wrapt==2.1.2 absl-py==2.5.1 flatbuffers==25.12.19 opt_einsum==3.4.0"
CUDA_WHEELS="nvidia-cublas-cu12==12.5.3.2 nvidia-cuda-runtime-cu12==12.5.82
nvidia-cuda-nvcc-cu12==12.5.82"
PLATFORM="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp
--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"

rm -rf "$WORK" && mkdir -p "$WORK/wheels" "$WORK/site" "$DEST"
cd "$WORK"
# shellcheck disable=SC2086
python3 -m pip download -q $PLATFORM -d wheels "tensorflow==$TF" $PY_PACKAGES $CUDA_WHEELS
for wheel in wheels/*.whl; do
    unzip -q -o "$wheel" -d unpacked
done
# Every package and its metadata; the CUDA wheels' libraries where TensorFlow's RUNPATH looks.
cp -r unpacked/* site/
rm -rf site/tensorflow/include site/nvidia/*/include site/nvidia/cublas/lib/libnvblas.so.*
rm -rf site/nvidia/cuda_nvcc/nvvm/lib64 site/nvidia/cuda_nvcc/nvvm/include
# `nvidia` stays a namespace package, merged with the image's own (CUDA 13) nvidia packages.
rm -f site/nvidia/__init__.py
echo 'int fitpipe_stand_in(void) { return 0; }' >stand_in.c
for spec in cufft:libcufft.so.11 cusolver:libcusolver.so.11 cusparse:libcusparse.so.12; do
    mkdir -p "site/nvidia/${spec%%:*}/lib"
    gcc -shared -fPIC -o "site/nvidia/${spec%%:*}/lib/${spec##*:}" \
        -Wl,-soname,"${spec##*:}" stand_in.c
done
tar -cf - site | zstd -T0 -17 --long=27 -q -o site.tar.zst
rm -f "$DEST"/p??
split -b 62914560 -d -a 2 site.tar.zst "$DEST/p"
cp "$(command -v zstd)" "$DEST/zstd"
ls -l "$DEST"
