"""gunicorn settings for Berth: a few workers with threads, since most time is spent
waiting on the registry, the directory or the Docker engine."""

import os

bind = os.environ.get("BERTH_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("BERTH_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("BERTH_THREADS", "8"))
timeout = 60
# Idle keep-alive connections cost a gthread worker nothing; a short value makes clients
# race the server's close on a reused connection (seen as resets under load).
keepalive = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# No runtime control socket: Berth needs none, and two Berths on one host would share
# the default path ($HOME/.gunicorn/gunicorn.ctl).
control_socket_disable = True

# Registry request timings are shared between workers through prometheus_client's
# multiprocess mode; the directory is fresh for each start.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="berth-metrics-")


def on_starting(server):
    """Hold the "Berth runs" lock while serving: `flask restore` refuses while it is held."""
    from pathlib import Path

    from berth.backup import hold_running_lock

    server.berth_lock = hold_running_lock(Path(os.environ.get("BERTH_DATA_DIR") or "instance").absolute())


def post_worker_init(worker):
    """Start the job runner at boot, not at the first job request: it marks the jobs a
    stopped Berth left running as interrupted, and runs jobs queued meanwhile."""
    services = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("berth")
    if services is not None and services.settings.background:
        services.runner.start()


def child_exit(server, worker):
    """Forget a dead worker's live gauges."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
