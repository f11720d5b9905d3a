"""A new CA is limited to the registry's names; an old one is noted; plain LDAP shows on /health."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from berth.findings import Level
from berth.tls.inspect import inspect_certificates
from berth.tls.issue import create_ca, issue_server_certificate, load_ca


def constraints(cert: x509.Certificate) -> x509.Extension:
    return cert.extensions.get_extension_for_class(x509.NameConstraints)


def test_a_new_ca_may_sign_only_the_registry_names(tmp_path):
    cert = create_ca(tmp_path / "ca", hostnames=("registry.pure.lab.com", "10.0.0.5", "::1"))
    extension = constraints(cert)
    assert extension.critical
    permitted = extension.value.permitted_subtrees
    assert x509.DNSName("registry.pure.lab.com") in permitted
    assert x509.IPAddress(ipaddress.ip_network("10.0.0.5/32")) in permitted
    assert x509.IPAddress(ipaddress.ip_network("::1/128")) in permitted


def test_a_ca_for_dns_names_only_may_sign_no_ip(tmp_path):
    cert = create_ca(tmp_path / "ca", hostnames=("registry.pure.lab.com",))
    excluded = constraints(cert).value.excluded_subtrees
    assert x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")) in excluded
    assert x509.IPAddress(ipaddress.ip_network("::/0")) in excluded


def verify(ca_cert, leaf) -> None:
    """Verify ``leaf`` against ``ca_cert`` as a TLS client would (name constraints included)."""
    from cryptography.x509.verification import PolicyBuilder, Store

    verifier = PolicyBuilder().store(Store([ca_cert])).build_server_verifier(x509.DNSName("registry.pure.lab.com"))
    verifier.verify(leaf, [])


def test_a_constrained_ca_still_issues_for_its_names_and_fails_for_others(tmp_path):
    pytest.importorskip("cryptography.x509.verification")
    create_ca(tmp_path / "ca", hostnames=("registry.pure.lab.com",))
    ca_cert, ca_key = load_ca(tmp_path / "ca")
    good = issue_server_certificate(ca_cert, ca_key, ["registry.pure.lab.com"], 30).certificate
    verify(ca_cert, good)
    evil = issue_server_certificate(ca_cert, ca_key, ["registry.pure.lab.com", "www.bank.example"], 30).certificate
    with pytest.raises(Exception, match="(?i)constraint|subtree|name"):
        verify(ca_cert, evil)


def test_an_unconstrained_ca_is_noted_in_certificate_health(tmp_path):
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Old CA")])
    now = datetime.now(UTC)
    old = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.crt"
    path.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    report = inspect_certificates(ca_file=path, server_file=None, served=None, hostname="registry.pure.lab.com")
    notes = [f for f in report.findings if "name constraints" in f.message]
    assert len(notes) == 1 and notes[0].level is Level.INFO
    create_ca(tmp_path / "new", hostnames=("registry.pure.lab.com",))
    report = inspect_certificates(
        ca_file=tmp_path / "new" / "ca.crt", server_file=None, served=None, hostname="registry.pure.lab.com"
    )
    assert not [f for f in report.findings if "name constraints" in f.message]


def test_plaintext_ldap_is_a_warning_in_certificate_health(tmp_path):
    report = inspect_certificates(ca_file=None, server_file=None, served=None, hostname="x", ldap_plaintext=True)
    warnings = [f for f in report.findings if "BERTH_LDAP_ALLOW_PLAINTEXT" in f.message + f.fix]
    assert len(warnings) == 1 and warnings[0].level is Level.WARNING


def test_the_certs_probe_reports_plaintext_ldap(offline_settings):
    from berth.health.probes import build_probes

    settings = offline_settings.replace(ldap_allow_plaintext=True, registry_url="https://127.0.0.1:9")
    report = build_probes(settings, None, None)["certs"]()
    assert any("BERTH_LDAP_ALLOW_PLAINTEXT" in f["message"] + f["fix"] for f in report["findings"])
    report = build_probes(settings.replace(ldap_start_tls=True), None, None)["certs"]()
    assert not any("BERTH_LDAP_ALLOW_PLAINTEXT" in f["message"] + f["fix"] for f in report["findings"])
