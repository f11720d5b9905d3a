"""The setup job: from an NFS path and a Swarm to a verified TLS registry service, idempotently.

Steps: check the NFS path; use or create the CA; keep or issue the server certificate;
render ``config.yml`` into a versioned Swarm config; store certificate and key as versioned
Swarm secrets; create or update the service; wait for convergence; verify TLS, ``/v2/`` and
a push. Every decision is made by comparing with what exists, so :func:`plan` can show it
beforehand and a second run changes nothing. The private key lives only in the job's
memory and in a Swarm secret (mode 0400): never on disk, in a log or on a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from berth.config import Settings
from berth.errors import JobFailed, NotFound
from berth.findings import Level
from berth.jobs import distribute, selftest
from berth.jobs.checks import DeployRun, check_api, connect, held_certificate, secret_names, verify_served, write_held
from berth.jobs.kinds import JobKind
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.nfs import inspect as nfs
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import find_service, service_config_yaml
from berth.tls.certs import describe
from berth.tls.issue import create_ca, issue_server_certificate, load_ca


@dataclass(frozen=True)
class PlanItem:
    """One thing setup would do: ``keep``, ``create`` or ``update`` it."""

    action: str
    what: str
    detail: str


# --- the job ------------------------------------------------------------------------------


class _Run(DeployRun):
    """One setup run: what its steps decided, handed from step to step (the key only in memory)."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.config_ref: dict = {}
        self.secret_refs: list[dict] = []
        self.service_id: str | None = None
        self.since: datetime | None = None
        self.changes: list[str] = []

    def steps(self) -> list[Step]:
        return [
            Step("Check the NFS path", self.check_nfs),
            Step("CA", self.ca),
            Step("Server certificate", self.certificate),
            Step("Registry config.yml", self.config),
            Step("Certificate and key secrets", self.secrets),
            Step("Registry service", self.service),
            Step("Wait for convergence", self.converge),
            Step("Verify TLS and /v2/", self.verify),
            Step("Distribute the CA to every node", self.distribute_ca),
            Step("Push and read back a test image", self.push),
        ]

    def check_nfs(self, ctx: StepContext) -> None:
        s = self.settings
        report = nfs.inspect(s.nfs_path, deadline=s.nfs_deadline, write_probe=s.nfs_write_probe)
        for finding in report.findings:
            ctx.log(f"{finding.level.value}: {finding.message}")
        critical = [f.message for f in report.findings if f.level == Level.CRITICAL] + (
            [report.error] if report.error else []
        )
        if critical and not ctx.options.get("confirm"):
            raise JobFailed(f"{s.nfs_path}: {critical[0]} Fix it, or run setup again confirming you want to go on.")
        if critical:
            ctx.log("The admin confirmed going on despite the critical finding above.")

    def ca(self, ctx: StepContext) -> None:
        try:
            ca_cert, _ = load_ca(self.settings.ca_dir)
            ctx.log(f"Using the CA in {self.settings.ca_dir} ({describe(ca_cert).sha256[:23]}…); nothing changed.")
        except NotFound:
            ca_cert = create_ca(self.settings.ca_dir, hostnames=self.settings.registry_hostnames)
            self.changes.append("CA")
            ctx.log(f"Created a CA in {self.settings.ca_dir}: ca.crt and ca.key (0600), {describe(ca_cert).sha256}.")

    def certificate(self, ctx: StepContext) -> None:
        s = self.settings
        held, reason = held_certificate(s, self.swarm())
        if held is not None:
            self.cert = held
            ctx.log(f"Keeping the held certificate: {reason}.")
            return
        ca_cert, ca_key = load_ca(s.ca_dir)
        issued = issue_server_certificate(ca_cert, ca_key, s.registry_hostnames, s.cert_days)
        self.cert, self.key_pem = issued.certificate, issued.key_pem
        info = describe(self.cert)
        self.changes.append("server certificate")
        ctx.log(f"Issuing a new certificate ({reason}): {info.sha256}, for {', '.join(info.names())},")
        ctx.log(f"  valid until {info.not_after:%Y-%m-%d %H:%M} UTC; its key stays in memory until stored as a secret.")

    def config(self, ctx: StepContext) -> None:
        s, client = self.settings, self.swarm()
        service = find_service(client, s.swarm_service)
        secret, source = rc.http_secret(s, service_config_yaml(client, service) if service else None, keep=True)
        text = rc.render(s, secret)
        name = sd.versioned_name(s.swarm_service, "config", rc.content_hash(text))
        config_id, created = sd.ensure_object(client, "config", name, text.encode(), "registry-config")
        like = sd.references(service["Spec"], "config").get(rc.CONFIG_TARGET) if service else None
        self.config_ref = sd.reference("config", config_id, name, rc.CONFIG_TARGET, 0o444, like)
        ctx.log(f"config.yml: storage {s.nfs_path}, http.addr {rc.listen_address(s)}, TLS from {rc.CERT_TARGET};")
        ctx.log(f"  shared http.secret from {source} (not shown).")
        if created:
            self.changes.append("registry config")
        ctx.log(f"{'Created' if created else 'Kept'} the Swarm config {name}.")

    def secrets(self, ctx: StepContext) -> None:
        s, client = self.settings, self.swarm()
        assert self.cert is not None
        cert_name, key_name = secret_names(s, describe(self.cert).sha256)
        pem = self.cert.public_bytes(Encoding.PEM)
        if self.key_pem is not None:
            cert_id, _ = sd.ensure_object(client, "secret", cert_name, pem, "registry-certificate")
            key_id, _ = sd.ensure_object(client, "secret", key_name, self.key_pem, "registry-key")
            self.key_pem = None  # in Swarm now; nothing else needs it
            self.changes.append("secrets")
            ctx.log(f"Created the secrets {cert_name} (certificate) and {key_name} (key, mode 0400).")
        else:
            cert_id = sd.object_id(client, "secret", cert_name)
            key_id = sd.object_id(client, "secret", key_name)
            ctx.log(f"Kept the secrets {cert_name} and {key_name}.")
        service = find_service(client, s.swarm_service)
        current = sd.references(service["Spec"], "secret") if service else {}
        self.secret_refs = [
            sd.reference("secret", cert_id, cert_name, rc.CERT_TARGET, 0o444, current.get(rc.CERT_TARGET)),
            sd.reference("secret", key_id, key_name, rc.KEY_TARGET, 0o400, current.get(rc.KEY_TARGET)),
        ]

    def service(self, ctx: StepContext) -> None:
        s, client = self.settings, self.swarm()
        service = find_service(client, s.swarm_service)
        desired = sd.desired_spec(service["Spec"] if service else None, s, self.config_ref, self.secret_refs)
        if service is None:
            self.since = sd.now_utc()
            self.service_id = sd.apply_spec(client, None, desired)
            self.changes.append("service created")
            ctx.log(f"Created the service {s.swarm_service} ({self.service_id[:12]}) from {s.registry_image}.")
            return
        self.service_id = service["ID"]
        changed = sd.differences(client, service["Spec"], desired, s) + restore_replicas(desired)
        if not changed:
            ctx.log(f"The service {s.swarm_service} already runs as wanted (version {service['Version']['Index']}).")
            return
        self.since = sd.now_utc()
        sd.apply_spec(client, self.service_id, desired)
        self.changes.append("service updated")
        ctx.log(f"Updated the service {s.swarm_service}: {', '.join(changed)} (rollback on failure).")

    def converge(self, ctx: StepContext) -> None:
        assert self.service_id is not None
        hold = sd.MONITOR_SECONDS if self.since else 0.0
        # Nothing sent: the last update status may be an old rollback; only the tasks count.
        took = sd.wait_converged(
            self.swarm(), self.service_id, timeout=self.settings.swarm_converge_timeout, since=self.since,
            hold=hold, restore=self.since is None, log=ctx.log,
        )  # fmt: skip
        ctx.log(f"Converged in {took:.1f} s" + (f" (stable for {hold:g} s)." if hold else "."))

    def verify(self, ctx: StepContext) -> None:
        assert self.cert is not None
        info = verify_served(self.settings, describe(self.cert).sha256, ctx)
        check_api(self.settings, ctx)
        write_held(self.settings, self.cert.public_bytes(Encoding.PEM), ctx)
        ctx.result.update(fingerprint=info.sha256, not_after=info.not_after.isoformat())

    def distribute_ca(self, ctx: StepContext) -> None:
        """With several nodes, the CA into every node's certs.d (the distribute-ca job's step)."""
        count = distribute.swarm_nodes(self.settings)
        if count < 2:
            ctx.log("One node: docker there trusts the registry through its own certs.d; nothing to distribute.")
            return
        distribute.distribute(self.settings, ctx)

    def push(self, ctx: StepContext) -> None:
        s = self.settings
        auth = (s.registry_username, s.registry_password or "") if s.registry_username else None
        done = selftest.run(s.registry_url, s.ca_dir / "ca.crt", auth)
        ctx.log(f"Pushed {done.reference} ({done.manifest_digest}) and read the manifest and blobs back intact.")
        ctx.result.update(changed=self.changes, selftest=done.manifest_digest)
        ctx.log(f"Changed: {', '.join(self.changes)}." if self.changes else "Nothing to change: all was in place.")


def setup_kind(settings: Settings) -> JobDefinition:
    """The ``setup`` job kind for ``settings``."""
    return JobDefinition(JobKind.SETUP, lambda options: _Run(settings).steps())


def plan(settings: Settings) -> list[PlanItem]:
    """What setup would do now, without changing anything (shown to the admin before running)."""
    s = settings
    report = nfs.inspect(s.nfs_path, deadline=s.nfs_deadline, write_probe=False)
    worst = max(report.findings, key=lambda f: f.level.rank, default=None)
    note = worst.message if worst else "checked first"
    if report.error or (worst and worst.level == Level.CRITICAL):
        note = f"CRITICAL: {report.error or note} Setup stops here unless confirmed."
    has_ca = (s.ca_dir / "ca.crt").is_file() and (s.ca_dir / "ca.key").is_file()
    items = [
        PlanItem("keep", f"NFS path {s.nfs_path}", note),
        PlanItem("keep" if has_ca else "create", "CA", str(s.ca_dir)),
    ]
    client = connect(s)
    held, reason = held_certificate(s, client) if has_ca else (None, "no CA yet")
    items.append(PlanItem("keep" if held else "create", "server certificate", reason))
    service = find_service(client, s.swarm_service)
    spec = service["Spec"] if service else {}
    text = rc.render(s, rc.http_secret(s, service_config_yaml(client, service) if service else None, keep=False)[0])
    config_name = sd.versioned_name(s.swarm_service, "config", rc.content_hash(text))
    in_use = (sd.references(spec, "config").get(rc.CONFIG_TARGET) or {}).get("ConfigName")
    action = "keep" if in_use == config_name else ("update" if in_use else "create")
    items.append(
        PlanItem(action, "registry config.yml", config_name if in_use == config_name else f"{in_use} → {config_name}")
    )
    names = secret_names(s, describe(held).sha256) if held else ("(new)", "(new)")
    using = tuple(
        (sd.references(spec, "secret").get(t) or {}).get("SecretName") for t in (rc.CERT_TARGET, rc.KEY_TARGET)
    )
    kept = using == names
    items.append(
        PlanItem(
            "keep" if kept else "create", "certificate and key secrets", ", ".join(names) if kept else "new versions"
        )
    )
    if service is None:
        items.append(PlanItem("create", f"service {s.swarm_service}", f"{s.registry_image}, storage {s.nfs_path}"))
        return items
    refs = [
        sd.reference("secret", "", names[0], rc.CERT_TARGET, 0o444),
        sd.reference("secret", "", names[1], rc.KEY_TARGET, 0o400),
    ]
    config_ref = sd.reference("config", "", config_name, rc.CONFIG_TARGET, 0o444)
    desired = sd.desired_spec(spec, s, config_ref, refs)
    changed = sd.differences(client, spec, desired, s) + restore_replicas(desired)
    items.append(
        PlanItem("update" if changed else "keep", f"service {s.swarm_service}", ", ".join(changed) or "as wanted")
    )
    return items


def restore_replicas(spec: dict) -> list[str]:
    """Scale a replicated service found at 0 back to 1 (else setup would wait at "0/0"); what changed."""
    replicated = (spec.get("Mode") or {}).get("Replicated")
    if replicated is None or replicated.get("Replicas") != 0:
        return []
    replicated["Replicas"] = 1
    return ["replicas 0 → 1"]
