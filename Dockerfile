# Berth as a container: slim Python, no compilers, non-root, gunicorn, a health check.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BERTH_DATA_DIR=/data \
    BERTH_BIND=0.0.0.0:8000

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY app.py gunicorn.conf.py ./
COPY berth/ berth/
COPY blueprints/ blueprints/
COPY templates/ templates/
COPY static/ static/

# The docker socket's group is given at run time (stack.yml sets the user's group).
RUN useradd --system --uid 10001 --no-create-home --home-dir /app berth \
    && mkdir -p /data && chown berth /data
USER 10001
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]
