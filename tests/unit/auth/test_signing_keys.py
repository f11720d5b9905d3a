"""Token-signing key rotation: the bundle, promotion, and signers in other processes noticing it."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from berth.auth.tokens import SigningKeys


def _x5c(token: str) -> str:
    return jwt.get_unverified_header(token)["x5c"][0]


def test_bundle_is_the_same_bytes_whatever_the_slots(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path).load()
    keys.stage_next()
    overlap = keys.bundle_pem(("current", "next"))
    assert overlap.count(b"BEGIN CERTIFICATE") == 2
    keys.promote_next()
    assert keys.bundle_pem() == overlap  # previous + current: the same two, the same order
    keys.stage_next()
    assert keys.bundle_pem(("current", "next")) != overlap and keys.bundle_pem().count(b"BEGIN") == 3


def test_a_signer_elsewhere_follows_a_promotion(tmp_path: Path) -> None:
    worker = SigningKeys(tmp_path).load()  # e.g. another gunicorn worker
    before = _x5c(worker.sign({"sub": "x"}))
    job = SigningKeys(tmp_path).load()
    job.stage_next()
    assert _x5c(worker.sign({"sub": "x"})) == before  # staged keys sign nothing
    job.promote_next()
    after = _x5c(worker.sign({"sub": "x"}))
    assert after != before and after == _x5c(job.sign({"sub": "x"}))


def test_discard_next_forgets_the_staged_key(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path).load()
    keys.stage_next()
    keys.discard_next()
    assert keys.bundle_pem().count(b"BEGIN CERTIFICATE") == 1
    with pytest.raises(FileNotFoundError):
        keys.promote_next()
