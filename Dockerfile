# syntax=docker/dockerfile:1
# Marketplace operations platform: production image (gunicorn, config.settings.production).
# Runtime configuration comes from the environment: DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS and
# DATABASE_URL are required; REDIS_URL switches django-q2 and the cache to Redis.
# The same image runs the web process (default CMD) and the task cluster (`python manage.py qcluster`).

# --- builder: a virtual environment with the pinned runtime dependencies -------------------
FROM python:3.12-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Every runtime dependency ships manylinux wheels (psycopg[binary], Pillow), so no compiler is needed.
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# --- runtime ------------------------------------------------------------------------------
FROM python:3.12-slim-bookworm AS runtime

# DJANGO_PRIVATE_ROOT is a folder path (where private files live), not a secret.
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app/site:/app \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    DJANGO_STATIC_ROOT=/app/var/static \
    DJANGO_MEDIA_ROOT=/app/var/media \
    DJANGO_PRIVATE_ROOT=/app/var/private \
    GUNICORN_CMD_ARGS="--access-logfile - --worker-tmp-dir /dev/shm"

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# The code stays owned by root (read-only for the app user); only media and private files are writable.
COPY . /app

# Static files are collected at build time. The dummy values exist only for this RUN line,
# to satisfy the production settings' required variables; they are not in the image's environment.
RUN DJANGO_SECRET_KEY=collectstatic-build-only \
    DJANGO_ALLOWED_HOSTS=localhost \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    python manage.py collectstatic --noinput \
    && rm -f /tmp/collectstatic.sqlite3 \
    && mkdir -p /app/var/media /app/var/private \
    && chown app:app /app/var/media /app/var/private

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

# Liveness only (a TCP connect): an HTTP probe would need a host in DJANGO_ALLOWED_HOSTS and HTTPS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8000), timeout=3).close()"]

CMD ["gunicorn", "--pythonpath", "site", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
