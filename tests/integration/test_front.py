"""deploy/nginx.conf in front of gunicorn on the devstack: idle clients do not stop Berth.

Debian's nginx runs the deploy config (ports and paths replaced, as the current user with a
temporary prefix) before a gunicorn running Berth with few threads. Two hundred sockets that
never finish their request (half without a byte, half mid-headers inside TLS) stay open
while /healthz answers in under a second, and a login over HTTPS gets a Secure __Host- cookie.
All traffic stays on loopback; every loop is bounded.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from berth.tls.issue import create_ca, issue_server_certificate, load_ca, write_private
from tests.helpers import IN_CI, need

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
IDLE_SOCKETS = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(conf: str, prefix: Path, listen: int, upstream: int, cert: Path, key: Path) -> str:
    """The deploy config with this test's ports and paths (and temp dirs under ``prefix``)."""
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{listen} ssl;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "/run/secrets/berth.crt": str(cert),
        "/run/secrets/berth.key": str(key),
        "error_log /dev/stderr warn;": f"error_log {prefix}/error.log warn;",
        "access_log /dev/stdout;": f"access_log {prefix}/access.log;",
    }
    for old, new in replacements.items():
        assert old in conf, f"deploy/nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    conf = conf.replace("client_body_temp_path /tmp/nginx-body;\n", "").replace(
        "proxy_temp_path /tmp/nginx-proxy;\n", ""
    )
    temp = "".join(
        f"    {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {\n", "http {\n" + temp, 1)
    if os.geteuid() == 0:
        conf = f"user {getpass.getuser()};\n" + conf  # workers as the current user, not nobody
    return conf


def wait_for(url: str, ca: Path | bool, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1, verify=ca).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"{what} did not answer {url}")


@pytest.fixture(scope="module")
def front(stack, tmp_path_factory):
    """gunicorn (1 worker, 4 threads) behind nginx with deploy/nginx.conf: ``(https base, CA file)``."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).is_file():
        need("nginx is not installed (apt-get install -y nginx)")
    work = tmp_path_factory.mktemp("front")
    tls_dir = work / "tls"
    create_ca(tls_dir, hostnames=("127.0.0.1",))
    issued = issue_server_certificate(*load_ca(tls_dir), ["127.0.0.1"], 2)
    cert, key = tls_dir / "front.crt", tls_dir / "front.key"
    cert.write_bytes(issued.certificate_pem)
    write_private(key, issued.key_pem)

    gunicorn_port, nginx_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "PROMETHEUS_"))}
    env.update({k: v for k, v in stack.items() if k.startswith("BERTH_")})
    env.update(
        BERTH_DATA_DIR=str(work / "data"),
        BERTH_SECURE_COOKIES="true",
        BERTH_TRUSTED_PROXIES="127.0.0.1/32",
        BERTH_PUBLIC_URL=f"https://127.0.0.1:{nginx_port}",
        BERTH_WORKERS="1",
        BERTH_THREADS="4",
    )
    logs = []
    gunicorn_log = open(work / "gunicorn.log", "wb")  # noqa: SIM115 - closed at teardown
    logs.append(gunicorn_log)
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{gunicorn_port}"]
        + ["app:app"],
        cwd=ROOT,
        env=env,
        stdout=gunicorn_log,
        stderr=subprocess.STDOUT,
    )
    prefix = work / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(render((ROOT / "deploy/nginx.conf").read_text(), prefix, nginx_port, gunicorn_port, cert, key))
    nginx_log = open(prefix / "stdout.log", "wb")  # noqa: SIM115 - closed at teardown
    logs.append(nginx_log)
    server = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        + ["-g", f"daemon off; pid {prefix}/nginx.pid;"],
        stdout=nginx_log,
        stderr=subprocess.STDOUT,
    )
    base = f"https://127.0.0.1:{nginx_port}"
    try:
        wait_for(f"http://127.0.0.1:{gunicorn_port}/healthz", False, gunicorn, "gunicorn")
        wait_for(f"{base}/healthz", str(tls_dir / "ca.crt"), server, "nginx")
        yield base, tls_dir / "ca.crt"
    finally:
        for proc in (server, gunicorn):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
        if not IN_CI:
            for name in (prefix / "error.log", work / "gunicorn.log"):
                if name.is_file():
                    print(name.read_text()[-2000:])


def open_idle_sockets(port: int, ca: Path) -> list[socket.socket]:
    """Half connect and say nothing; half finish TLS and send half a request's headers."""
    context = ssl.create_default_context(cafile=str(ca))
    opened: list[socket.socket] = []
    for number in range(IDLE_SOCKETS):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        if number % 2:
            tls = context.wrap_socket(raw, server_hostname="127.0.0.1")
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            opened.append(tls)
        else:
            opened.append(raw)
    return opened


def test_idle_clients_do_not_stop_berth(front):
    base, ca = front
    port = int(base.rsplit(":", 1)[1])
    sockets = open_idle_sockets(port, ca)
    try:
        slowest = 0.0
        for _ in range(15):  # about 5 s with all 200 sockets open
            started = time.monotonic()
            response = requests.get(f"{base}/healthz", timeout=5, verify=str(ca))
            elapsed = time.monotonic() - started
            assert response.status_code == 200 and response.json() == {"status": "ok"}
            slowest = max(slowest, elapsed)
            time.sleep(0.3)
        assert slowest < 1.0, f"/healthz took {slowest:.2f} s with {IDLE_SOCKETS} idle clients"
    finally:
        for s in sockets:
            s.close()


def test_login_over_https_gets_a_secure_host_cookie(front):
    base, ca = front
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca)
    page = session.get(f"{base}/login", timeout=5)
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("__Host-berth_session=") and "Secure" in cookie and "Path=/" in cookie
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")  # Berth believes the proxy's https
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base}/login",
        data={"username": "dave", "password": "dave-pw", "csrf_token": token},
        headers={"Referer": f"{base}/login", "Origin": base},  # as a browser sends them (HTTPS CSRF checks Referer)
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    assert "dave" in session.get(f"{base}/", timeout=10).text


def test_static_files_are_compressed_and_cacheable(front):
    base, ca = front
    response = requests.get(f"{base}/static/css/berth.css", timeout=5, verify=str(ca))
    assert response.status_code == 200
    assert response.headers.get("Content-Encoding") == "gzip"
    assert "max-age=86400" in response.headers["Cache-Control"]
