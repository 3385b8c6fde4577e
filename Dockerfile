# Closeloop service image: build the virtualenv in one stage, run it as a non-root user in another.
# Containers use an external PostgreSQL (FEEDBACK_DATABASE_URL); see compose.yaml.

FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install .

FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --create-home --uid 10001 closeloop
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/closeloop
# Migrations are read from the working directory (app/core/migrations.py).
COPY alembic.ini ./
COPY migrations ./migrations
USER closeloop
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["closeloop", "serve", "--host", "0.0.0.0", "--port", "8000"]
