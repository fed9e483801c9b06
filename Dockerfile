# syntax=docker/dockerfile:1
#
# gatekeeper: docker build -t registry.acme.io/gatekeeper:0.1.0 .
#
# The build stage installs the project and its pinned dependencies into a virtual environment;
# the runtime stage copies only that environment, the example policies and calendars, and runs
# as the unprivileged uid 10001 (read-only root filesystem friendly).
#
# Locally, with the embedded SQLite database in a volume:
#   docker run --rm -v gatekeeper-data:/var/lib/gatekeeper IMAGE db upgrade
#   docker run --rm -p 8080:8080 -v gatekeeper-data:/var/lib/gatekeeper IMAGE
# On Kubernetes see deploy/gatekeeper.yaml (PostgreSQL, policies and calendars from ConfigMaps).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/gatekeeper
ENV PATH=/opt/gatekeeper/bin:$PATH
WORKDIR /src
# Only what the package build needs (pyproject.toml names README.md as the readme).
COPY pyproject.toml README.md ./
COPY gatekeeper/ gatekeeper/
RUN pip install . \
 && gatekeeper --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="gatekeeper" \
      org.opencontainers.image.description="GitOps release gatekeeper: business calendars, drift and provenance checks before a release goes out"
RUN groupadd --system --gid 10001 gatekeeper \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin gatekeeper \
 && mkdir -p /var/lib/gatekeeper \
 && chown 10001:10001 /var/lib/gatekeeper
# Same base image and path as the build stage, so the environment's interpreter links still hold.
COPY --from=build /opt/gatekeeper /opt/gatekeeper
WORKDIR /app
# Shipped examples (owned by root, read-only for the service); mount your own over them or point
# GATEKEEPER_POLICIES_DIR / GATEKEEPER_CALENDARS_DIR elsewhere.
COPY policies/ /app/policies/
COPY calendars/ /app/calendars/
ENV PATH=/opt/gatekeeper/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEKEEPER_HOST=0.0.0.0 \
    GATEKEEPER_PORT=8080 \
    GATEKEEPER_POLICIES_DIR=/app/policies \
    GATEKEEPER_CALENDARS_DIR=/app/calendars \
    GATEKEEPER_DATABASE_URL=sqlite:////var/lib/gatekeeper/gatekeeper.db
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["gatekeeper"]
CMD ["serve"]
