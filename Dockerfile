# One image for every Questboard role: web, worker, beat, flower and the migrate job (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QUESTBOARD_INSTANCE_DIR=/var/lib/questboard

WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY questboard ./questboard
COPY shared ./shared
COPY web ./web
COPY workers ./workers
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/questboard --create-home questboard

# Run as an unprivileged user; its home is the instance folder (export files, generated secrets).
USER questboard
WORKDIR /var/lib/questboard
EXPOSE 5000 5555
CMD ["questboard", "--help"]
