"""/trust: certs.d first, and no command installs the CA before checking the page's fingerprint."""

from __future__ import annotations

import html
import re
import subprocess

from berth.roles import Role
from berth.tls.issue import create_ca
from tests.helpers import make_app


def as_dave(settings):
    """A test client of a fresh app, logged in as the developer dave."""
    app = make_app(settings)
    record = app.extensions["berth"].sessions.create("dave", "uid=dave", "Dave", Role.DEVELOPER, "127.0.0.1")
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = record.id
    return client


def trust_page(settings) -> tuple[str, str]:
    create_ca(settings.ca_dir, hostnames=("registry.pure.lab.com",))
    body = as_dave(settings).get("/trust").get_data(as_text=True)
    return body, (settings.ca_dir / "ca.crt").read_text()


def commands(body: str) -> list[str]:
    return [html.unescape(block) for block in re.findall(r"<pre[^>]*><code>(.*?)</code></pre>", body, re.S)]


def test_certs_d_comes_before_the_system_stores(offline_settings):
    body, _ = trust_page(offline_settings)
    assert body.index("/etc/docker/certs.d/") < body.index("update-ca-certificates") < body.index("update-ca-trust")


def test_every_install_checks_the_fingerprint_first(offline_settings):
    body, _ = trust_page(offline_settings)
    stores = ("certs.d", "ca-certificates", "ca-trust", "Keychains", "Cert:")
    installs = [c for c in commands(body) if any(store in c for store in stores) and "curl --cacert" not in c]
    assert len(installs) >= 8  # Docker, rootless, Podman, containerd, macOS, Windows, Debian, RHEL
    for command in installs:
        check = min(
            command.find(word) for word in ("sha256sum", "shasum -a 256", "GetCertHashString") if word in command
        )
        first_write = min(command.find(store) for store in stores if store in command)
        assert check < first_write, command
        assert "-o /etc" not in command and "-o /usr" not in command and "-o ~" not in command


def test_the_check_passes_for_the_real_ca_and_fails_for_another(offline_settings, tmp_path):
    body, pem = trust_page(offline_settings)
    docker = next(c for c in commands(body) if "certs.d" in c)
    check = docker.splitlines()[1].split("\\")[0].strip()  # the openssl | sha256sum | grep line
    good = tmp_path / "good"
    good.mkdir()
    (good / "berth-ca.crt").write_text(pem)
    assert subprocess.run(["sh", "-c", check], cwd=good).returncode == 0
    other = tmp_path / "other"
    create_ca(other / "ca")
    (other / "berth-ca.crt").write_text((other / "ca" / "ca.crt").read_text())
    assert subprocess.run(["sh", "-c", check], cwd=other).returncode != 0


def test_during_a_ca_rotation_the_page_shows_both_cas_and_ca_crt_holds_both(offline_settings):
    from cryptography import x509

    from berth.tls.authority import Authority
    from berth.tls.certs import fingerprint

    _, old_pem = trust_page(offline_settings)
    authority = Authority(offline_settings.ca_dir)
    state = authority.stage(("registry.pure.lab.com",))
    authority.trust_both()
    authority.issue_from_new()
    client = as_dave(offline_settings)
    body = client.get("/trust").get_data(as_text=True)
    assert "The CA is being replaced" in body and state.old in body and state.new in body
    served = client.get("/ca.crt").get_data()
    assert [fingerprint(c) for c in x509.load_pem_x509_certificates(served)] == [state.new, state.old]
    check = next(c for c in commands(body) if "certs.d" in c).splitlines()[1].split("\\")[0].strip()
    assert state.new.replace(":", "").lower() in check  # the commands check the new CA, first in the bundle
    assert old_pem.strip() in served.decode()
