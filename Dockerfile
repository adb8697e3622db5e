# Mosic container image.
#
#   docker build -t mosic .
#   docker run -p 8000:8000 -v mosic:/data mosic
#
# .ci/appliance builds this file with podman and runs the image that way (tests/test_appliance.py).
#
# With nothing else configured the container keeps its SQLite database, its media and a
# generated API key (printed once to the log) in the /data volume. Set MOSIC_DB_HOST & co. to
# use PostgreSQL instead (see compose.yaml and the Helm chart in helm/mosic).

# --- build stage: a virtual environment holding Mosic and its dependencies ----------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# binutils for strip (below); only this stage has it.
# hadolint ignore=DL3008
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && python -m venv /opt/venv

# .dockerignore lets only the package sources, pyproject.toml, the README and the lock through.
# Dependencies come from requirements.lock, every file checked against its hash (.ci/lock
# writes it); then Mosic itself, with nothing more resolved.
COPY . /src
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /src/requirements.lock \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /src \
    && /opt/venv/bin/mosic --version

# Out of the venv, what nothing in it imports (about a quarter of it): pip and setuptools (the
# image never installs again), the packages' own test suites, type stubs, Cython and C sources
# and headers; botocore's models of every AWS service but S3 and the STS and SSO ones its
# credential providers call (a web-identity role in Kubernetes); and the debug symbols that
# some wheels leave in their extension modules (PyAV's 32 MB are 6 without). The libraries
# that auditwheel vendored (*.libs) are left as shipped. Then everything is imported once.
ARG IMPORT_ALL="import importlib, pkgutil, mosic.app; \
[importlib.import_module(m.name) for m in pkgutil.walk_packages(mosic.__path__, 'mosic.') \
 if m.name != 'mosic.__main__']; \
import av, numpy, PIL.Image, uvloop, httptools, uvicorn, uvicorn_worker, gunicorn.app.base, \
tqdm, watchfiles, playhouse.migrate, prometheus_client.multiprocess, aiobotocore.session"
RUN site=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && /opt/venv/bin/python -m pip uninstall -y -q pip setuptools \
    && find "$site" -depth -type d -name tests -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' \
         -o -name '*.c' -o -name '*.h' \) -delete \
    && find "$site/botocore/data" -mindepth 1 -maxdepth 1 -type d \
         ! -name s3 ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} + \
    && find "$site" -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
    && /opt/venv/bin/python -c "$IMPORT_ALL" \
    && /opt/venv/bin/mosic --version

# --- final stage: the same slim Python, the venv, a non-root user --------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="Mosic" \
      org.opencontainers.image.description="A minimalist, fast, async audio streaming backend" \
      org.opencontainers.image.licenses="MIT"

# A fixed numeric id (10001; the Helm chart's runAsUser), so Kubernetes' runAsNonRoot can verify
# it and a bind-mounted directory can be chowned to it. Its home is not /data, so nothing that
# writes under $HOME lands in the shared data volume (gunicorn's control socket, which would,
# is turned off in mosic/cli/gunicorn.py).
RUN groupadd --system --gid 10001 mosic \
    && useradd --system --uid 10001 --gid mosic --home-dir /home/mosic --create-home \
       --shell /usr/sbin/nologin mosic \
    && mkdir -p /data /backups \
    && chown mosic:mosic /data /backups

COPY --from=builder /opt/venv /opt/venv

# MOSIC_WORKERS > 1 makes `mosic serve` run gunicorn with uvicorn workers.
# The bytecode was compiled at install time; the root filesystem may be read-only as long as
# /tmp is writable (gunicorn's worker files and the multiprocess metrics live there).
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MOSIC_DATA_DIR=/data \
    MOSIC_WORKERS=2

# An empty working directory: `mosic` reads ./.env from here if one is mounted.
WORKDIR /app
USER 10001:10001
# A named volume starts as a copy of this directory, so it belongs to the mosic user.
VOLUME ["/data"]
EXPOSE 8000

# The slim image has no curl: Python asks /healthz (liveness only; /readyz checks the database).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `mosic serve` applies pending migrations (under an advisory lock on PostgreSQL), then serves.
CMD ["mosic", "serve", "--host", "0.0.0.0", "--port", "8000"]
