# syntax=docker/dockerfile:1.7
#
# The one image of Agency: the operator (`python -m agency_operator`, the default command) and the
# runtime every run Pod starts (`python -m agency_runtime`, set as the Pod's command by the operator).
#
#   docker build -t ghcr.io/agency-dev/agency:0.1.0 .
#
# Dependencies are installed with the same steps the Makefile and the tests use (`uv pip sync` of a
# lock file, then the project itself without dependencies), except that the image syncs
# requirements.lock (the tested pins without the dev tools) and installs the project as a regular
# package instead of editable. tests/integration/chart/test_image_install_steps.py runs the
# build stage's RUN lines on the host, so they stay runnable without a Docker engine.
#
# Both stages must use the same Python image: the venv's interpreter is a link to the base image's.
# Pin it by digest in release builds: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ----- build: resolve nothing, install exactly the lock file into /opt/agency -------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# Compiled bytecode ships in the image: the root filesystem is read-only at run time and litellm's import
# is slow without it. No cache: the layer holds only the venv.
ENV UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
RUN python -m venv --without-pip /opt/agency
# requirements.lock pins the runtime dependencies at exactly the versions of requirements-dev.lock,
# which the tests install (make lock writes both; a test checks the pins agree), without the dev tools.
COPY requirements.lock ./
RUN uv pip sync --python /opt/agency/bin/python requirements.lock
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY runtime/ runtime/
RUN uv pip install --python /opt/agency/bin/python --no-deps .

# ----- final: Python and the venv; no compilers, no uv, no sources ----------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="agency" \
      org.opencontainers.image.description="Agency: AI agents as governed Kubernetes workloads (operator and runtime)" \
      org.opencontainers.image.source="https://github.com/agency-dev/agency" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
COPY --from=build /opt/agency /opt/agency
# HOME on /tmp: the only writable path (an emptyDir in the Pods). litellm reads its bundled price list
# instead of fetching one at import time.
ENV PATH=/opt/agency/bin:$PATH \
    VIRTUAL_ENV=/opt/agency \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /tmp
USER 65532:65532
# kopf liveness, metrics, signal endpoint (the chart's default ports).
EXPOSE 8080 9090 8443
CMD ["python", "-m", "agency_operator"]
