"""Certificate facts and findings on certificates issued by Berth's own code."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from berth.errors import Conflict
from berth.findings import Level
from berth.registry.inspect import config_findings
from berth.tls.certs import describe, expiry_findings, hostname_findings, read_certificate
from berth.tls.inspect import inspect_certificates
from berth.tls.issue import create_ca, issue_server_certificate, load_ca


@pytest.fixture
def ca(tmp_path):
    create_ca(tmp_path / "ca")
    return load_ca(tmp_path / "ca")


def server(ca, hosts=("registry.pure.lab.com", "10.0.0.5"), days=90):
    issued = issue_server_certificate(*ca, list(hosts), days)
    return describe(issued.certificate)


def test_ca_is_created_once_with_a_private_key(tmp_path):
    create_ca(tmp_path / "ca")
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    info = read_certificate(tmp_path / "ca" / "ca.crt")
    assert info.is_ca and info.key == "EC P-256" and info.days_left() > 3600
    with pytest.raises(Conflict):
        create_ca(tmp_path / "ca")


def test_server_certificate_names_and_fingerprint(ca):
    info = server(ca)
    assert info.dns_names == ("registry.pure.lab.com",) and info.ip_addresses == ("10.0.0.5",)
    assert not info.is_ca and len(info.sha256.split(":")) == 32
    assert info.issuer == "CN=Berth registry CA"


@pytest.mark.parametrize(
    ("days_left", "level"),
    [(89, Level.OK), (20, Level.WARNING), (2, Level.CRITICAL), (-1, Level.CRITICAL)],
)
def test_expiry_levels(ca, days_left, level):
    info = server(ca, days=90)
    now = info.not_after - timedelta(days=days_left)
    if days_left == 89:
        now = info.not_before + timedelta(days=1)
    assert expiry_findings(info, "server certificate", now)[0].level is level


def test_past_two_thirds_of_lifetime_is_a_warning(ca):
    info = server(ca, days=365)
    now = info.not_before + timedelta(days=250)  # 115 days left, but 68 % used
    assert expiry_findings(info, "server certificate", now)[0].level is Level.WARNING


def test_hostname_missing_from_sans_is_critical(ca):
    info = server(ca, hosts=("registry.pure.lab.com",))
    assert hostname_findings(info, "registry.pure.lab.com", "x")[0].level is Level.OK
    finding = hostname_findings(info, "127.0.0.1", "server certificate")[0]
    assert finding.level is Level.CRITICAL and "does not name 127.0.0.1" in finding.message


def test_certificate_panel_expiring_in_two_days(tmp_path, ca):
    issued = issue_server_certificate(*ca, ["127.0.0.1"], 2)
    (tmp_path / "server.crt").write_bytes(issued.certificate_pem)
    report = inspect_certificates(
        ca_file=tmp_path / "ca" / "ca.crt", server_file=tmp_path / "server.crt", served=None, hostname="127.0.0.1"
    )
    assert not report.ok
    assert any(f.level is Level.CRITICAL and "expires in" in f.message for f in report.findings)
    assert report.details["server"]["source"] == "held"


def test_certificate_panel_uses_served_when_none_held(ca):
    info = server(ca, hosts=("localhost",))
    report = inspect_certificates(ca_file=None, server_file=None, served=info, hostname="127.0.0.1")
    assert report.details["server"]["source"] == "served"
    assert any(f.level is Level.CRITICAL and "does not name 127.0.0.1" in f.message for f in report.findings)


def test_registry_config_findings():
    good = """
http: {addr: ":5000", secret: s3cret, draintimeout: 30s}
storage: {filesystem: {rootdirectory: /var/lib/registry}, delete: {enabled: true}}
health: {storagedriver: {enabled: true}}
auth: {token: {realm: "https://berth/auth/token", service: r, issuer: berth, rootcertbundle: /b.pem}}
"""
    assert [f.level for f in config_findings(good)] == [Level.OK]
    bare = "http: {addr: ':5000'}\nstorage: {filesystem: {rootdirectory: /srv}}\n"
    levels = {f.message.split(" ")[0]: f.level for f in config_findings(bare, nfs_path=Path("/var/lib/registry"))}
    assert levels["http.secret"] is Level.WARNING and levels["health.storagedriver"] is Level.WARNING
    assert levels["storage.delete"] is Level.INFO and levels["http.draintimeout"] is Level.INFO
    assert Level.WARNING in levels.values()
    assert any(f.level is Level.CRITICAL and "accepts pushes from anyone" in f.message for f in config_findings(bare))
    assert config_findings(None)[0].level is Level.INFO
    assert config_findings(": : :")[0].level is Level.WARNING


def test_a_registry_that_does_not_answer_makes_the_certificate_unknown_not_a_warning(tmp_path):
    from berth.health.monitor import with_state
    from berth.tls.inspect import inspect_certificates

    report = inspect_certificates(
        ca_file=None, server_file=None, served=None, hostname="registry", served_error="No TLS handshake: refused"
    ).as_dict()
    assert report["unchecked"] == "registry not answering"
    assert [f["level"] for f in report["findings"]] == ["info", "info"]
    assert "registry is not answering" in report["findings"][-1]["message"]
    assert with_state(report, 1.0, 60.0)["state"] == "unknown"


def test_setup_restores_one_replica_of_a_service_scaled_to_zero():
    from berth.swarm.deploy import restore_replicas

    spec = {"Mode": {"Replicated": {"Replicas": 0}}}
    assert restore_replicas(spec) == ["replicas 0 → 1"] and spec["Mode"]["Replicated"]["Replicas"] == 1
    assert restore_replicas({"Mode": {"Replicated": {"Replicas": 3}}}) == []
    assert restore_replicas({"Mode": {"Global": {}}}) == []
