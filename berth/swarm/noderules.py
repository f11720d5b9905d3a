"""Judging what each node's probe saw (:mod:`berth.swarm.node_probe`): its storage and its CA.

Pure functions from one probe's JSON to the two parts of a node's entry in
``/api/v1/status`` (``nfs`` and ``ca``, each a :class:`~berth.report.ComponentReport`).
A node whose storage part is critical must not run the registry: a node that booted before
the NFS server answered (fstab ``bg``) has an empty local directory at the path, and a
registry task there would serve and accept images nobody else sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from berth.findings import Finding, Level
from berth.report import ComponentReport

NFS_TYPES = ("nfs", "nfs4")
STORAGE_LABEL = "berth.registry.storage"
BAD = "bad"
#: The registry service's placement constraint that keeps it off nodes labelled bad.
STORAGE_CONSTRAINT = f"node.labels.{STORAGE_LABEL}!={BAD}"


@dataclass(frozen=True)
class NodeReport:
    """One node's verdict: its hostname, storage and CA parts, and its labels."""

    node: str
    nfs: ComponentReport
    ca: ComponentReport
    labels: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The node's entry in ``/api/v1/status``."""
        return {"node": self.node, "nfs": self.nfs.as_dict(), "ca": self.ca.as_dict(), "labels": dict(self.labels)}


def judge_storage(seen: dict) -> ComponentReport:
    """The ``nfs`` part: the path exists, is on NFS, and holds the catalog's repositories."""
    if "error" in seen:
        return ComponentReport(error=f"The probe could not read the storage: {seen['error']}", details=seen)
    path, findings = seen.get("path", "?"), []
    if not seen.get("exists"):
        findings.append(Finding(Level.CRITICAL, f"{path} does not exist on this node.", "Mount the NFS export there."))
    fstype = seen.get("fstype", "")
    if fstype in NFS_TYPES:
        findings.append(Finding(Level.OK, f"{path} is on NFS ({seen.get('source')}, {fstype})."))
    else:
        findings.append(
            Finding(
                Level.WARNING,
                f"{path} is not on NFS here ({fstype or 'no mount'}, {seen.get('root', '?')}).",
                "Check the fstab entry and `mount -a` on this node.",
            )  # fmt: skip
        )
    missing, expected = int(seen.get("missing_count", 0)), int(seen.get("expected", 0))
    if missing:
        names = ", ".join(seen.get("missing", [])[:5])
        findings.append(
            Finding(
                Level.CRITICAL,
                f"{missing} of the {expected} repositories in the catalog are not in {path} "
                f"on this node ({names}): it sees other storage than the registry.",
                "Mount the NFS export on this node (it may have booted before the server answered), "
                "then run the checks again.",
            )  # fmt: skip
        )
    elif expected:
        findings.append(Finding(Level.OK, f"All {expected} catalog repositories checked are in {path}."))
    return ComponentReport(findings=findings, details=seen)


def judge_ca(seen: dict, wanted: list[str]) -> ComponentReport:
    """The ``ca`` part: the node's ``certs.d/HOST:PORT/ca.crt`` holds every CA in ``wanted``."""
    path, held = seen.get("path", "?"), seen.get("fingerprints") or []
    details = seen | {"wanted": wanted}
    if seen.get("error"):
        return ComponentReport(error=f"{path}: {seen['error']}", details=details)
    if not seen.get("exists"):
        fix = "Run the distribute-ca job."
        return ComponentReport(findings=[Finding(Level.CRITICAL, f"{path} is missing: docker cannot pull.", fix)],
                               details=details)  # fmt: skip
    absent = [w for w in wanted if w not in held]
    if absent:
        message = f"{path} lacks the CA {absent[0][:23]}…: docker on this node refuses the registry."
        return ComponentReport(findings=[Finding(Level.CRITICAL, message, "Run the distribute-ca job.")],
                               details=details)  # fmt: skip
    return ComponentReport(findings=[Finding(Level.OK, f"{path} holds the current CA ({len(held)} in the bundle).")],
                           details=details)  # fmt: skip


def judge(seen: dict, wanted: list[str], labels: dict[str, str]) -> NodeReport:
    """One node's report from its probe's JSON line."""
    return NodeReport(str(seen.get("node") or "?"), judge_storage(seen.get("storage") or {}),
                      judge_ca(seen.get("ca") or {}, wanted), labels)  # fmt: skip


def storage_label(report: NodeReport) -> str | None:
    """The label value the node should carry: ``bad`` when its storage is critical, else none."""
    return BAD if not report.nfs.ok else None
