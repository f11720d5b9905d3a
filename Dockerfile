# Berth as a container, built with no package index reachable.
#
#   make image                          # wheels on the host (build/wheels), then this build, offline
#   make image BASE=berth-base:test     # on a base made locally (see README, "Deployment")
#
# BASE is any Debian-like image with Python 3.11 and its venv module: python:3.11-slim
# (python and pip on PATH) or a debootstrap root filesystem (python3 and python3 -m venv).
# Both get the same venv in /opt/berth/venv, installed from build/wheels with --no-index,
# and the code in /opt/berth/app. Few steps: on a vfs engine each one copies the image.
ARG BASE=python:3.11-slim

FROM ${BASE} AS install
COPY . /src/
RUN python3 -m venv /opt/berth/venv \
    && /opt/berth/venv/bin/python -m pip install --no-index --find-links /src/build/wheels --no-cache-dir \
       --disable-pip-version-check -q -r /src/requirements.txt \
    && /opt/berth/venv/bin/python -m pip uninstall -y -q pip setuptools \
    && mkdir /opt/berth/app \
    && cd /src && cp -r app.py gunicorn.conf.py deploy/healthcheck.py berth blueprints templates static /opt/berth/app/ \
    && /opt/berth/venv/bin/python -m compileall -q /opt/berth/app

FROM ${BASE}
COPY --from=install /opt/berth /opt/berth
# The Docker socket's group is given at run time (stack.yml: user "10001:DOCKER_GID").
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /opt/berth/app \
        --shell /usr/sbin/nologin berth \
    && mkdir -p /data && chown 10001 /data && chmod 0700 /data
ENV PATH=/opt/berth/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BERTH_DATA_DIR=/data \
    BERTH_BIND=0.0.0.0:8000
WORKDIR /opt/berth/app
USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/opt/berth/venv/bin/python", "/opt/berth/app/healthcheck.py"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]
