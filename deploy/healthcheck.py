"""The image's HEALTHCHECK: exit 0 when Berth's ``/healthz`` answers 200 on its bind address.

Reads ``BERTH_BIND`` (as gunicorn.conf.py does), so a Berth bound to a loopback port on the
host network is checked where it listens. Standard library only.
"""

import os
import sys
import urllib.request


def main() -> int:
    """Return 0 if ``/healthz`` answers 200 within 4 s, else 1."""
    host, _, port = os.environ.get("BERTH_BIND", "0.0.0.0:8000").rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 - a wildcard bind is reached on loopback
        host = "127.0.0.1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{port}/healthz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
