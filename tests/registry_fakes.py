"""A small fake registry for faults a real Distribution registry never produces.

HTTPS (a fresh server certificate for 127.0.0.1 from the devstack CA) in a thread of the
test process. ``GET /v2/`` always answers like a registry; every other path answers with
the fault of ``mode``::

    with FakeRegistry(ca_dir, mode="huge") as url:
        RegistryClient(url, ca_bundle=ca_dir / "ca.crt").catalog()

Modes: ``malformed_json``, ``huge`` (50 MB, chunked, generated while sent), ``huge_declared``
(the same with ``Content-Length``), ``invalid_utf8``, ``link_other_host``,
``redirect_other_host``, ``error_500``, ``hang`` (no answer for ``hang_seconds``), ``stall``
(headers and part of the body, then nothing for ``hang_seconds``, like a registry whose
storage hangs mid-read).
"""

from __future__ import annotations

import json
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devstack import tls

MODES = (
    "malformed_json",
    "huge",
    "huge_declared",
    "invalid_utf8",
    "link_other_host",
    "redirect_other_host",
    "error_500",
    "hang",
    "stall",
)
OTHER_HOST = "elsewhere.example:5000"
HUGE_BYTES = 50 * 1024 * 1024
_CHUNK = 1024 * 1024


class FakeRegistry:
    """A context manager serving one fault; ``with`` gives its base URL."""

    def __init__(
        self, ca_dir: Path | str, mode: str, *, hang_seconds: float = 10.0, huge_bytes: int = HUGE_BYTES
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.ca_dir = Path(ca_dir)
        self.mode = mode
        self.hang_seconds = hang_seconds
        self.huge_bytes = huge_bytes
        self.paths: list[str] = []  # every request's method and path, in order
        self.bytes_sent = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-registry-")
        cert, key = Path(self._tmp.name) / "server.crt", Path(self._tmp.name) / "server.key"
        tls.issue_server_cert(self.ca_dir / "ca.crt", self.ca_dir / "ca.key", cert, key, days=1)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._httpd = _Server(("127.0.0.1", 0), _Handler, context, self)
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=f"fake-{self.mode}", daemon=True
        )
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # wakes a hanging handler
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._tmp is not None:
            self._tmp.cleanup()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext, fake: FakeRegistry) -> None:
        self.context = context
        self.fake = fake
        super().__init__(address, handler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        try:  # the handshake runs in the connection's thread, never in the accept loop
            request = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        fake = self.server.fake
        with fake.lock:
            fake.paths.append(f"{self.command} {self.path}")
        if self.path == "/v2/":
            self._send(200, b"{}")
            return
        try:
            getattr(self, f"_mode_{fake.mode}")(fake)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True  # the client gave up reading, as it should

    def _mode_malformed_json(self, fake: FakeRegistry) -> None:
        self._send(200, b'{"repositories": ["centos", "debian"')

    def _mode_invalid_utf8(self, fake: FakeRegistry) -> None:
        self._send(200, b'{"repositories": ["centos", "deb\xff\xfeian"]}')

    def _mode_link_other_host(self, fake: FakeRegistry) -> None:
        link = f'<https://{OTHER_HOST}/v2/_catalog?last=centos&n=1000>; rel="next"'
        self._send(200, b'{"repositories": ["centos"]}', {"Link": link})

    def _mode_redirect_other_host(self, fake: FakeRegistry) -> None:
        self._send(302, b"", {"Location": f"https://{OTHER_HOST}{self.path}"})

    def _mode_error_500(self, fake: FakeRegistry) -> None:
        body = {"errors": [{"code": "UNKNOWN", "message": "unknown error", "detail": "storage driver failed"}]}
        self._send(500, json.dumps(body).encode())

    def _mode_hang(self, fake: FakeRegistry) -> None:
        fake.stopping.wait(fake.hang_seconds)
        self.close_connection = True
        if not fake.stopping.is_set():
            self._send(200, b'{"repositories": []}')

    def _mode_stall(self, fake: FakeRegistry) -> None:
        self.send_response(200)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"repositories": ["cen')
        self.wfile.flush()
        fake.stopping.wait(fake.hang_seconds)
        self.close_connection = True

    def _huge_chunks(self, fake: FakeRegistry):
        """A syntactically plausible JSON prefix, then filler, ``huge_bytes`` in all; never in memory at once."""
        head = b'{"repositories": ["'
        yield head
        left = fake.huge_bytes - len(head)
        block = b"a" * _CHUNK
        while left > 0:
            piece = block[: min(left, _CHUNK)]
            left -= len(piece)
            yield piece

    def _mode_huge(self, fake: FakeRegistry) -> None:
        self.send_response(200)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for piece in self._huge_chunks(fake):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            with fake.lock:
                fake.bytes_sent += len(piece)
        self.wfile.write(b"0\r\n\r\n")

    def _mode_huge_declared(self, fake: FakeRegistry) -> None:
        self.send_response(200)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(fake.huge_bytes))
        self.end_headers()
        if self.command == "HEAD":
            return
        for piece in self._huge_chunks(fake):
            self.wfile.write(piece)
            with fake.lock:
                fake.bytes_sent += len(piece)
