"""The distribute-ca job: the CA into ``/etc/docker/certs.d/HOST:PORT/ca.crt`` on every Swarm node.

Docker on a node pulls from the registry only if that node's certs.d holds the CA that
signed the registry's certificate, and only a task on the node can write there. So the job
runs Berth's node probe as a Swarm ``global-job`` (:mod:`berth.swarm.nodecheck`) that writes
the bundle on each node, then a second, read-only round that reads every node's file back
and compares fingerprints. It fails naming each node that does not hold every CA.

The bundle is ``BERTH_CA_DIR/ca.crt``, or ``BERTH_CA_DIR/trust.pem`` when present (the
old and the new CA while a CA rotation overlaps them).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from berth.config import Settings
from berth.errors import JobFailed, NotFound
from berth.jobs.checks import connect
from berth.jobs.kinds import JobKind
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.swarm.nodecheck import check_nodes
from berth.tls.authority import TRUST_BUNDLE
from berth.tls.certs import fingerprint


def trust_bundle(settings: Settings) -> tuple[str, list[str]]:
    """The PEM bundle nodes should hold and the fingerprints in it."""
    for name in (TRUST_BUNDLE, "ca.crt"):
        path = Path(settings.ca_dir) / name
        if path.is_file():
            pem = path.read_text()
            return pem, [fingerprint(c) for c in x509.load_pem_x509_certificates(pem.encode())]
    raise NotFound(f"There is no CA in {settings.ca_dir}; run the setup job first.")


def distribute(settings: Settings, ctx: StepContext, bundle: str | None = None) -> None:
    """Write ``bundle`` (default: :func:`trust_bundle`) on every node, then verify each by fingerprint."""
    if bundle is None:
        pem, wanted = trust_bundle(settings)
    else:
        pem, wanted = bundle, [fingerprint(c) for c in x509.load_pem_x509_certificates(bundle.encode())]
    client = connect(settings)
    written = check_nodes(client, settings, [], wanted, write_ca=pem)
    for report in written:
        details = report.ca.details
        why = report.ca.error or details.get("error", "no answer")
        ctx.log(
            f"{report.node}: wrote {details.get('path')}"
            if details.get("written")
            else f"{report.node}: NOT written ({why})"
        )
    verified = check_nodes(client, settings, [], wanted)
    bad = [r for r in verified if not r.ca.ok]
    for report in verified:
        ctx.log(f"{report.node}: {report.ca.findings[0].message if report.ca.findings else report.ca.error}")
    ctx.result.setdefault("nodes", {}).update({r.node: r.ca.ok for r in verified})
    ctx.result["fingerprints"] = wanted
    if bad:
        raise JobFailed(f"{len(bad)} node(s) do not hold the CA: {', '.join(r.node for r in bad)}.")
    ctx.log(f"All {len(verified)} nodes hold {len(wanted)} CA certificate(s), verified by fingerprint.")


def swarm_nodes(settings: Settings) -> int:
    """How many nodes the Swarm has (setup distributes the CA when more than one)."""
    return len(connect(settings).api.nodes())


def distribute_kind(settings: Settings) -> JobDefinition:
    """The ``distribute-ca`` job kind for ``settings``."""
    return JobDefinition(
        JobKind.DISTRIBUTE_CA,
        lambda options: [Step("Write the CA on every node and verify it", lambda ctx: distribute(settings, ctx))],
    )
