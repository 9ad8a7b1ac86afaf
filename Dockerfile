# The training image: experiments/ on Python 3.11 with pinned numpy, run as uid 10001.
#
# Build context (the launcher assembles it):
#   Dockerfile, experiments/ (train.py, probe.py, requirements.txt) and
#   .wheelhouse/  every wheel experiments/requirements.txt needs, downloaded on the host
#                 with `pip download --only-binary=:all:` for CPython 3.11 manylinux x86_64.
# The build needs no network at all (build it with network mode "none"):
#   docker build --network none --build-arg BASE_IMAGE="$(scripts/base-image.sh)" .
# BASE_IMAGE: the official python:3.11-slim where a registry is reachable, else the
# locally made launcher-base:python3.11-bookworm (Debian's python3; no `python`, PEP 668),
# hence a venv and `python3` everywhere below. Works with the classic builder (docker-py).
ARG BASE_IMAGE=python:3.11-slim

# ---- stage 1: the venv, installed only from the wheelhouse --------------------------
# A separate stage keeps the wheels out of the final image's layers entirely.
FROM ${BASE_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1
RUN python3 -m venv /opt/venv
COPY experiments/requirements.txt /tmp/requirements.txt
COPY .wheelhouse/ /tmp/wheelhouse/
RUN /opt/venv/bin/python3 -m pip install --no-index --find-links /tmp/wheelhouse \
        --only-binary=:all: -r /tmp/requirements.txt \
 && rm -rf /tmp/wheelhouse /tmp/requirements.txt

# ---- stage 2: the runtime image ----------------------------------------------------
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="launcher-trainer" \
      org.opencontainers.image.description="Training job of the launcher project: python3 /app/experiments/train.py [--name=value ...]" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# Deterministic numerics and a quiet, read-only-friendly Python:
# - one BLAS/OpenMP thread: fixed summation order, no oversubscription with many containers;
# - OPENBLAS_CORETYPE pins OpenBLAS (numpy's wheel is a DYNAMIC_ARCH build) to the Nehalem
#   kernels: SSE2..SSE4.2, no AVX and no FMA. Every x86_64 CPU of the last ~15 years
#   (x86-64-v2: Intel since Nehalem 2008, AMD since Bulldozer/Jaguar, all Zen) runs them,
#   and since the kernel no longer depends on the host CPU (FMA rounds differently), the same
#   image gives bit-identical BLAS results on every x86_64 host. Slower than AVX2 kernels,
#   which does not matter for small models. Forcing a core is not checked against the CPU,
#   so never pin AVX2/AVX-512 kernels (Haswell, SkylakeX): SIGILL on older CPUs. On a
#   non-x86_64 host OpenBLAS warns "Core not found" once and auto-detects.
# - NPY_DISABLE_CPU_FEATURES does the same for numpy's own SIMD loops (dispatched per CPU:
#   AVX-512 and AVX2 paths round differently from SSE ones), keeping numpy at SSE4.2, the
#   same level as the OpenBLAS pin. Features a CPU lacks are ignored.
# - PYTHONHASHSEED fixes str hashing (set iteration order); no .pyc writes (read-only root).
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    OPENBLAS_NUM_THREADS=1 \
    OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENBLAS_CORETYPE=Nehalem \
    NPY_DISABLE_CPU_FEATURES="AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR AVX2 FMA3 F16C AVX" \
    PYTHONHASHSEED=0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The non-root user owns /outputs; an anonymous volume mounted there takes this owner.
RUN useradd --uid 10001 --user-group --no-log-init --create-home --shell /bin/sh trainer \
 && mkdir -p /outputs \
 && chown 10001:10001 /outputs \
 && chmod 0755 /outputs

COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY experiments/ /app/experiments/

USER 10001
# Extra arguments (`docker run IMAGE --lr=0.1 ...`) go to the training job.
ENTRYPOINT ["python3", "/app/experiments/train.py"]
