# The one smsq image: the CLI (`smsq migrate|sandbox|metrics|doctor|...`), the Celery worker, beat and Flower.
# Built in layers: the pinned dependencies first (they change rarely, so a code change reuses that layer),
# then smsq itself without dependencies. tests/, bench/, docs/ stay out (.dockerignore).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# 1. Dependencies only, at the versions of constraints.txt (the tests install the same ones). The image
#    runs Flower and the sandbox too, so it takes those extras.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = p['optional-dependencies']; print('\n'.join(p['dependencies'] + extras['flower'] + extras['sandbox']))" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

# 2. smsq itself (no dependency resolution: everything is already there).
COPY README.md ./
COPY models ./models
COPY worker ./worker
COPY scheduler ./scheduler
COPY sandbox ./sandbox
COPY migrations ./migrations
RUN pip install --no-deps -c constraints.txt /app \
    && useradd --create-home --uid 10001 smsq

# Never root: a worker process runs provider calls and parses their answers.
USER smsq
WORKDIR /home/smsq

# Redis (limiter and locks) answers; compose replaces this with a check per service (worker, beat, metrics).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-m", "worker.metrics.health", "redis"]

EXPOSE 8080 5555 9464 9465
CMD ["smsq", "--help"]
