"""Per-node checks: the probe's facts (run here on real files) and how Berth judges them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from berth.swarm import node_probe, noderules
from berth.swarm.nodecheck import PROBE_SOURCE
from berth.tls.certs import fingerprint
from berth.tls.issue import create_ca

FP = "AA:" * 31 + "AA"


def _repo(root: Path, name: str) -> None:
    (root / "docker/registry/v2/repositories" / name / "_manifests").mkdir(parents=True)


def test_probe_runs_as_python_c_and_reports_storage_and_ca(tmp_path: Path) -> None:
    _repo(tmp_path / "data", "centos")
    _repo(tmp_path / "data", "team/app/api")
    ca_cert = create_ca(tmp_path / "ca", hostnames=("127.0.0.1",))
    env = {
        "BERTH_PROBE_NODE": "node9",
        "BERTH_PROBE_PATH": str(tmp_path / "data"),
        "BERTH_PROBE_REPOS": json.dumps(["centos", "team/app/api", "debian"]),
        "BERTH_PROBE_CA_DIR": str(tmp_path / "certs.d" / "127.0.0.1:5000"),
        "BERTH_PROBE_WRITE_CA": (tmp_path / "ca" / "ca.crt").read_text(),
    }
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE_SOURCE], env=env, capture_output=True,
                          text=True, timeout=30, check=True)  # fmt: skip
    seen = json.loads(done.stdout)
    assert seen["node"] == "node9" and seen["storage"]["missing"] == ["debian"]
    assert seen["ca"]["written"] and seen["ca"]["fingerprints"] == [fingerprint(ca_cert)]
    report = noderules.judge(seen, [fingerprint(ca_cert)], {})
    assert not report.nfs.ok and report.ca.ok and noderules.storage_label(report) == "bad"
    assert oct(os.stat(tmp_path / "certs.d/127.0.0.1:5000/ca.crt").st_mode & 0o777) == "0o644"


def test_fingerprints_match_cryptography(tmp_path: Path) -> None:
    ca_cert = create_ca(tmp_path, hostnames=("registry.example",))
    pem = (tmp_path / "ca.crt").read_text()
    assert node_probe.fingerprints(pem + pem) == [fingerprint(ca_cert)] * 2
    assert fingerprint(x509.load_pem_x509_certificate(pem.encode())) == fingerprint(ca_cert)


def test_nfs_storage_with_every_repository_passes() -> None:
    seen = {"path": "/var/lib/registry", "exists": True, "fstype": "nfs", "source": "nas:/docker",
            "expected": 4, "missing": [], "missing_count": 0}  # fmt: skip
    report = noderules.judge_storage(seen)
    assert report.ok and [f.level.value for f in report.findings] == ["ok", "ok"]


def test_missing_path_and_probe_errors_are_critical() -> None:
    assert not noderules.judge_storage({"path": "/var/lib/registry", "exists": False}).ok
    assert noderules.judge_storage({"error": "task failed"}).error


def test_ca_rules() -> None:
    assert not noderules.judge_ca({"path": "p", "exists": False}, [FP]).ok
    assert not noderules.judge_ca({"path": "p", "exists": True, "fingerprints": ["BB"]}, [FP]).ok
    both = noderules.judge_ca({"path": "p", "exists": True, "fingerprints": ["BB", FP]}, [FP, "BB"])
    assert both.ok and "2 in the bundle" in both.findings[0].message


def test_node_report_shape() -> None:
    report = noderules.judge({"node": "n1", "storage": {"error": "x"}, "ca": {"error": "x"}}, [FP], {"a": "b"})
    data = report.as_dict()
    assert set(data) == {"node", "nfs", "ca", "labels"} and data["labels"] == {"a": "b"}
    assert set(data["nfs"]) >= {"ok", "error", "findings"}
