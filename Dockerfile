# The one smsq image: the CLI (`smsq migrate|sandbox|metrics|...`), the Celery worker, beat and Flower.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install /app \
    && useradd --create-home --uid 10001 smsq

# Never root: a worker process runs provider calls and parses their answers.
USER smsq
WORKDIR /home/smsq

EXPOSE 8080 5555 9464
CMD ["smsq", "--help"]
