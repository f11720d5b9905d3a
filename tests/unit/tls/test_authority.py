"""The CA directory through a CA rotation: each phase on disk, resumable, reversible until the end."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from berth.errors import NotFound
from berth.tls.authority import Authority, Phase
from berth.tls.certs import fingerprint
from berth.tls.issue import create_ca, issue_server_certificate, load_ca

HOSTS = ("registry.pure.lab.com", "127.0.0.1")


@pytest.fixture
def authority(tmp_path) -> Authority:
    create_ca(tmp_path / "ca", hostnames=HOSTS)
    return Authority(tmp_path / "ca")


def certs_in(path) -> list[str]:
    return [fingerprint(c) for c in x509.load_pem_x509_certificates(path.read_bytes())]


def issues_consistently(authority: Authority) -> str:
    """load_ca gives a matching certificate and key; their server certificate verifies with ca.crt."""
    cert, key = load_ca(authority.ca_dir)
    issued = issue_server_certificate(cert, key, HOSTS, 30).certificate
    issued.verify_directly_issued_by(cert)
    context = ssl.create_default_context(cafile=str(authority.ca_dir / "ca.crt"))
    assert len(context.get_ca_certs()) == len(certs_in(authority.ca_dir / "ca.crt"))
    return fingerprint(cert)


def test_without_a_rotation_the_current_ca_is_the_only_one_trusted(authority: Authority) -> None:
    assert authority.state() is None
    assert [t.role for t in authority.trusted()] == ["current"]
    assert authority.bundle_pem() == (authority.ca_dir / "ca.crt").read_text()
    with pytest.raises(NotFound):
        authority.trust_both()


def test_a_rotation_moves_through_every_phase_and_ends_with_the_new_ca_alone(authority: Authority) -> None:
    old = fingerprint(authority.current())
    state = authority.stage(HOSTS)
    assert state.phase is Phase.STAGED and state.old == old and state.new != old
    assert fingerprint(authority.current()) == old  # staged: the old CA still issues
    assert authority.staged().extensions.get_extension_for_class(x509.NameConstraints).critical
    assert authority.stage(HOSTS) == state  # a second run resumes, it does not make another CA

    authority.trust_both()
    assert certs_in(authority.trust_path) == [state.new, old]
    assert [t.role for t in authority.trusted()] == ["new", "old"]
    assert issues_consistently(authority) == old

    assert authority.issue_from_new().phase is Phase.ISSUING
    assert certs_in(authority.ca_dir / "ca.crt") == [state.new, old]
    assert issues_consistently(authority) == state.new
    assert authority.issue_from_new().phase is Phase.ISSUING  # again: the same files
    assert certs_in(authority.previous_dir / "ca.crt") == [old]

    now = datetime.now(UTC)
    overlap = authority.begin_overlap(timedelta(hours=24), now)
    assert overlap.phase is Phase.OVERLAP and not overlap.removal_due(now)
    assert overlap.removal_due(now + timedelta(hours=24, seconds=1))
    assert certs_in(authority.ca_dir / "ca.crt") == [state.new, old]  # Berth verifies either during the overlap

    authority.remove_old()
    assert authority.state() is None
    assert certs_in(authority.ca_dir / "ca.crt") == [state.new]
    assert not authority.trust_path.exists() and not authority.rotation_dir.exists()
    assert issues_consistently(authority) == state.new
    assert (authority.ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600


def test_a_failed_roll_makes_the_old_ca_issue_again_and_a_later_run_resumes(authority: Authority) -> None:
    old = fingerprint(authority.current())
    state = authority.stage(HOSTS)
    authority.trust_both()
    authority.issue_from_new()
    restored = authority.restore_previous()
    assert restored is not None and restored.phase is Phase.TRUSTED
    assert issues_consistently(authority) == old
    assert certs_in(authority.ca_dir / "ca.crt") == [old, state.new]  # whatever the registry serves verifies
    assert [t.role for t in authority.trusted()] == ["new", "old"]
    assert certs_in(authority.trust_path) == [state.new, old]
    authority.issue_from_new()
    assert issues_consistently(authority) == state.new
    assert certs_in(authority.previous_dir / "ca.crt") == [old]


def test_keys_are_private_at_every_phase(authority: Authority) -> None:
    authority.stage(HOSTS)
    authority.trust_both()
    authority.issue_from_new()
    for key in (authority.ca_dir / "ca.key", authority.next_dir / "ca.key", authority.previous_dir / "ca.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key


def test_rotate_ca_refuses_when_another_trust_shares_the_ca_file(offline_settings) -> None:
    from berth.errors import JobFailed
    from berth.jobs.ca_rotation import refuse_shared_files

    ca_file = offline_settings.ca_dir / "ca.crt"
    refuse_shared_files(offline_settings.replace(registry_ca=ca_file, ldap_ca=None))
    with pytest.raises(JobFailed, match="BERTH_LDAP_CA"):
        refuse_shared_files(offline_settings.replace(registry_ca=ca_file, ldap_ca=ca_file))
    with pytest.raises(JobFailed, match="BERTH_REGISTRY_CA"):
        refuse_shared_files(offline_settings.replace(registry_ca=offline_settings.data_dir / "other.crt"))


def test_the_health_panel_tells_ops_where_a_rotation_stands(authority: Authority) -> None:
    from berth.findings import Level
    from berth.tls.authority import rotation_findings

    assert rotation_findings(authority.state()) == []
    stopped = authority.stage(HOSTS)
    assert [f.level for f in rotation_findings(stopped)] == [Level.WARNING]
    assert "resumes" in rotation_findings(stopped)[0].fix
    authority.trust_both()
    authority.issue_from_new()
    now = datetime.now(UTC)
    overlap = authority.begin_overlap(timedelta(hours=1), now)
    assert [f.level for f in rotation_findings(overlap, now)] == [Level.INFO]
    assert [f.level for f in rotation_findings(overlap, now + timedelta(hours=2))] == [Level.WARNING]
