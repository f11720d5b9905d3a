"""A hostile registry must not receive (or redirect) Berth's registry credentials elsewhere.

Two plain-HTTP servers on loopback: the "registry" and "elsewhere", which records every
Authorization header it is sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from berth.errors import BadUpstreamResponse, JobFailed, Unauthorized
from berth.jobs import selftest
from berth.registry.client import RegistryClient


class Server:
    """A loopback HTTP server whose answers a test sets: ``routes[(method, path)] = (status, headers, body)``."""

    def __init__(self):
        self.routes: dict[tuple[str, str], tuple[int, dict, bytes]] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                outer.seen.append((self.command, path, self.headers.get("Authorization")))
                status, headers, body = outer.routes.get((self.command, path), (404, {}, b"{}"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    registry, elsewhere = Server(), Server()
    yield registry, elsewhere
    registry.close()
    elsewhere.close()


def challenge(realm: str) -> dict:
    return {"WWW-Authenticate": f'Bearer realm="{realm}",service="registry",scope="registry:catalog:*"'}


def catalog_route(server, realm):
    server.routes[("GET", "/v2/_catalog")] = (401, challenge(realm), b"{}")


def test_a_token_realm_on_another_host_gets_no_credentials(servers):
    registry, elsewhere = servers
    catalog_route(registry, f"{elsewhere.url}/token")
    elsewhere.routes[("GET", "/token")] = (200, {}, b'{"token": "t"}')
    client = RegistryClient(registry.url, username="svc", password="Hunter2")
    with pytest.raises(Unauthorized) as caught:
        client.catalog()
    assert "BERTH_REGISTRY_TOKEN_REALMS" in caught.value.message
    assert elsewhere.seen == []


def test_a_listed_realm_and_the_registry_itself_are_used(servers):
    registry, elsewhere = servers
    elsewhere.routes[("GET", "/token")] = (200, {}, b'{"token": "t"}')
    catalog_route(registry, f"{elsewhere.url}/token")
    client = RegistryClient(registry.url, username="svc", password="pw", token_realms=(f"{elsewhere.url}/token",))
    with pytest.raises(Unauthorized):
        client.catalog()  # the fake registry refuses every token; what matters is who was asked
    assert elsewhere.seen and elsewhere.seen[0][2].startswith("Basic ")
    registry.routes[("GET", "/token")] = (200, {}, b'{"token": "t"}')
    catalog_route(registry, f"{registry.url}/token")
    with pytest.raises(Unauthorized):
        RegistryClient(registry.url, username="svc", password="pw").catalog()
    assert ("GET", "/token") in [(m, p) for m, p, _ in registry.seen]


def test_a_huge_token_answer_is_not_read_to_the_end(servers):
    registry, _ = servers
    catalog_route(registry, f"{registry.url}/token")
    registry.routes[("GET", "/token")] = (200, {}, json.dumps({"token": "t" * (3 * 1024 * 1024)}).encode())
    with pytest.raises(BadUpstreamResponse) as caught:
        RegistryClient(registry.url, username="svc", password="pw").catalog()
    assert "at most" in caught.value.message


def test_the_selftest_follows_no_upload_location_to_another_host(servers, tmp_path):
    registry, elsewhere = servers
    registry.routes[("POST", "/v2/berth-selftest/blobs/uploads/")] = (
        202,
        {"Location": f"{elsewhere.url}/upload/1"},
        b"",
    )
    with pytest.raises(JobFailed) as caught:
        selftest.run(registry.url, tmp_path / "ca.crt", ("svc", "Hunter2"))
    assert "another host" in str(caught.value)
    assert elsewhere.seen == []
