"""gunicorn settings for Berth: a few workers with threads, since most time is spent
waiting on the registry, the directory or the Docker engine."""

import os

bind = os.environ.get("BERTH_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("BERTH_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("BERTH_THREADS", "8"))
timeout = 60
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
