"""The CA directory through a CA rotation: which CA issues, which CAs clients trust, and how far it got.

``BERTH_CA_DIR`` holds ``ca.crt`` and ``ca.key``: the CA that issues the registry's server
certificate. A CA rotation (the ``rotate-ca`` job) moves it through phases, each kept on
disk so that a Berth stopped at any point leaves a state the next run resumes from:

- **staged**: a new name-constrained CA in ``rotation/next/``; nothing trusts it yet.
- **trusted**: ``trust.pem`` holds the new and the old CA (new first), and every node's
  ``certs.d`` holds that bundle.
- **issuing**: the new CA issues: ``ca.key`` is its key and ``ca.crt`` the new and the old
  CA, so everything that verifies the registry with ``ca.crt`` accepts either; the old CA
  waits in ``rotation/previous/``. Undone by :meth:`Authority.restore_previous`.
- **overlap**: the registry serves a certificate from the new CA; both stay trusted until
  ``remove_after``.
- finally the old CA is removed: ``ca.crt`` is the new CA alone; ``trust.pem`` and
  ``rotation/`` are gone.

Every file is written to a temporary name and renamed, keys mode 0600.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from berth.errors import NotFound
from berth.findings import Finding, Level
from berth.tls.certs import fingerprint
from berth.tls.issue import ca_paths, create_ca, load_ca, private_pem, write_private

TRUST_BUNDLE = "trust.pem"
ROTATION = "rotation"


class Phase(StrEnum):
    """How far a CA rotation got, in order."""

    STAGED = "staged"
    TRUSTED = "trusted"
    ISSUING = "issuing"
    OVERLAP = "overlap"

    @property
    def rank(self) -> int:
        return list(Phase).index(self)


@dataclass(frozen=True)
class RotationState:
    """A CA rotation under way: its phase, both CAs' fingerprints, and when the old one may go."""

    phase: Phase
    old: str
    new: str
    started_at: str
    overlap_since: str | None = None
    remove_after: str | None = None

    def reached(self, phase: Phase) -> bool:
        """Whether this rotation is at ``phase`` or past it."""
        return self.phase.rank >= phase.rank

    def removal_due(self, now: datetime | None = None) -> bool:
        """Whether the grace period of the overlap has passed."""
        if self.phase is not Phase.OVERLAP or self.remove_after is None:
            return False
        return (now or datetime.now(UTC)) >= datetime.fromisoformat(self.remove_after)


@dataclass(frozen=True)
class TrustedCA:
    """One CA clients should trust now, and its part in a rotation (``current``, ``new`` or ``old``)."""

    certificate: x509.Certificate
    role: str

    @property
    def sha256(self) -> str:
        return fingerprint(self.certificate)


class Authority:
    """Berth's CA directory: the issuing CA, a rotation's staged and previous CAs, the trust bundle."""

    def __init__(self, ca_dir: Path):
        self.ca_dir = Path(ca_dir)
        self.rotation_dir = self.ca_dir / ROTATION
        self.next_dir = self.rotation_dir / "next"
        self.previous_dir = self.rotation_dir / "previous"
        self.state_path = self.rotation_dir / "state.json"
        self.trust_path = self.ca_dir / TRUST_BUNDLE

    # -- reading ----------------------------------------------------------------------------

    def state(self) -> RotationState | None:
        """The rotation under way, or None."""
        try:
            raw = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        return RotationState(**{**raw, "phase": Phase(raw["phase"])})

    def current(self) -> x509.Certificate:
        """The CA that issues now (the first certificate of ``ca.crt``)."""
        return load_ca(self.ca_dir)[0]

    def staged(self) -> x509.Certificate:
        """The new CA of the rotation under way."""
        return load_ca(self.next_dir)[0]

    def trusted(self) -> list[TrustedCA]:
        """The CAs clients should trust now: the current one, or during a rotation the new and the old."""
        state = self.state()
        if state is None or not state.reached(Phase.TRUSTED):
            return [TrustedCA(self.current(), "current")]
        return [TrustedCA(self.staged(), "new"), TrustedCA(self.old(), "old")]

    def bundle_pem(self) -> str:
        """The PEM bundle every node should hold now (the CAs of :meth:`trusted`)."""
        return "".join(pem(t.certificate) for t in self.trusted())

    # -- moving through a rotation ----------------------------------------------------------

    def stage(self, hostnames: Sequence[str], now: datetime | None = None) -> RotationState:
        """Make the new CA (name-constrained to ``hostnames``) unless a rotation already has one."""
        state = self.state()
        if state is not None:
            return state
        old = self.current()
        self.next_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.next_dir.exists():  # a run stopped between making the CA and recording it
            shutil.rmtree(self.next_dir)
        when = now or datetime.now(UTC)
        new = create_ca(self.next_dir, common_name=f"Berth registry CA {when:%Y-%m-%d %H%M}", hostnames=hostnames)
        state = RotationState(Phase.STAGED, fingerprint(old), fingerprint(new), when.isoformat())
        self._save(state)
        return state

    def old(self) -> x509.Certificate:
        """The CA a rotation replaces: kept as previous once the new one issues, else the current one."""
        return load_ca(self.previous_dir)[0] if self.previous_dir.is_dir() else self.current()

    def overlap_pem(self) -> str:
        """The bundle every node holds during a rotation: the new CA, then the old."""
        return pem(self.staged()) + pem(self.old())

    def trust_both(self) -> RotationState:
        """Write ``trust.pem`` (:meth:`overlap_pem`) once every node holds it, and record the phase."""
        state = self._require()
        _write_atomic(self.trust_path, self.overlap_pem().encode())
        if not state.reached(Phase.TRUSTED):
            state = replace(state, phase=Phase.TRUSTED)
            self._save(state)
        return state

    def issue_from_new(self) -> RotationState:
        """Make the new CA the issuer (``ca.crt`` new + old, ``ca.key`` new); the old one kept as previous."""
        state = self._require()
        if not self.previous_dir.is_dir():
            old_cert, old_key = load_ca(self.ca_dir)
            staging = self.rotation_dir / "previous.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(mode=0o700)
            cert_path, key_path = ca_paths(staging)
            write_private(key_path, private_pem(old_key))
            cert_path.write_bytes(pem(old_cert).encode())
            staging.rename(self.previous_dir)
        new_cert, new_key = load_ca(self.next_dir)
        old_cert = load_ca(self.previous_dir)[0]
        cert_path, key_path = ca_paths(self.ca_dir)
        _write_atomic(key_path, private_pem(new_key), private=True)
        _write_atomic(cert_path, (pem(new_cert) + pem(old_cert)).encode())
        if not state.reached(Phase.ISSUING):
            state = replace(state, phase=Phase.ISSUING)
            self._save(state)
        return state

    def restore_previous(self) -> RotationState | None:
        """Undo :meth:`issue_from_new`: the old CA issues again; the new stays staged and trusted.

        ``ca.crt`` keeps both (old first): whichever certificate the registry ended up
        serving, Berth still verifies it, as every node does.
        """
        state = self.state()
        if state is None or not self.previous_dir.is_dir():
            return state
        old_cert, old_key = load_ca(self.previous_dir)
        cert_path, key_path = ca_paths(self.ca_dir)
        _write_atomic(key_path, private_pem(old_key), private=True)
        _write_atomic(cert_path, (pem(old_cert) + pem(self.staged())).encode())
        shutil.rmtree(self.previous_dir)
        state = replace(state, phase=Phase.TRUSTED)
        self._save(state)
        return state

    def begin_overlap(self, grace: timedelta, now: datetime | None = None) -> RotationState:
        """Record that the registry serves a certificate of the new CA; the old may go after ``grace``."""
        state = self._require()
        if state.phase is Phase.OVERLAP:
            return state
        when = now or datetime.now(UTC)
        state = replace(
            state, phase=Phase.OVERLAP, overlap_since=when.isoformat(), remove_after=(when + grace).isoformat()
        )
        self._save(state)
        return state

    def remove_old(self) -> None:
        """End the rotation: ``ca.crt`` is the new CA alone; the bundle, the old CA and the record go."""
        self._require()
        new = self.staged()
        _write_atomic(ca_paths(self.ca_dir)[0], pem(new).encode())
        self.trust_path.unlink(missing_ok=True)
        shutil.rmtree(self.rotation_dir)

    def _require(self) -> RotationState:
        state = self.state()
        if state is None:
            raise NotFound(f"No CA rotation is under way in {self.ca_dir}.")
        return state

    def _save(self, state: RotationState) -> None:
        _write_atomic(self.state_path, json.dumps(asdict(state), indent=1).encode())


def rotation_findings(state: RotationState | None, now: datetime | None = None) -> list[Finding]:
    """What ops should know about a CA rotation under way (nothing when none is)."""
    if state is None:
        return []
    if state.phase is not Phase.OVERLAP:
        return [
            Finding(
                Level.WARNING,
                f"A CA rotation begun {state.started_at[:16]} UTC stands at the phase {state.phase}.",
                "If no rotate-ca job is running, run rotate-ca: it resumes from this phase.",
            )
        ]
    if state.removal_due(now):
        return [
            Finding(
                Level.WARNING,
                f"The overlap of the old and the new CA ended {state.remove_after}; the old CA is still trusted.",
                "Berth's scheduler queues rotate-ca to remove it; see /jobs if that run failed.",
            )
        ]
    return [
        Finding(
            Level.INFO,
            f"CA rotation: the registry serves a certificate from the new CA; the old one stays trusted on every node"
            f" until {state.remove_after}.",
            "Machines outside the Swarm: install ca.crt from /trust again; rotate-ca with confirm ends it now.",
        )
    ]


def pem(cert: x509.Certificate) -> str:
    """One certificate as PEM text."""
    return cert.public_bytes(Encoding.PEM).decode()


def _write_atomic(path: Path, data: bytes, private: bool = False) -> None:
    """Write ``path`` through a temporary file and a rename: readers see the old or the new, never half."""
    temporary = path.with_name(f".{path.name}.tmp")
    if private:
        write_private(temporary, data)
    else:
        temporary.write_bytes(data)
    os.replace(temporary, path)
