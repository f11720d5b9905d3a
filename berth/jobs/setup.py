"""The setup job: from an NFS path and a Swarm to a verified TLS registry service, idempotently.

Steps: check the NFS path; use or create the CA; keep or issue the server certificate;
render ``config.yml`` (with Berth's token auth, carrying over what setup does not own) into
a versioned Swarm secret, beside the token-signing certificates; store certificate and key
as versioned Swarm secrets; create or update the service; wait for convergence; verify
TLS, ``/v2/`` and a push with a token Berth signs for itself; remove the config and
secrets the service no longer uses. Every decision is made by comparing with what exists,
so :func:`plan` can show it beforehand and a second run changes nothing. Turning on auth
where the registry was open, or replacing an operator's ``auth``, needs ``confirm``. The
private key lives only in the job's memory and in a Swarm secret (mode 0400): never on
disk, in a log or on a page.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding

from berth.config import Settings
from berth.errors import JobFailed, NotFound
from berth.findings import Level
from berth.jobs import distribute, selftest
from berth.jobs.checks import DeployRun, check_api, held_certificate, secret_names, verify_served, write_held
from berth.jobs.desired import LOGIN_NEEDED, desired_config, remove_replaced, replaced, store
from berth.jobs.kinds import JobKind
from berth.jobs.plan import PlanItem, plan  # noqa: F401  (part of this module's interface)
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.nfs import inspect as nfs
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import find_service
from berth.tls.certs import describe
from berth.tls.issue import create_ca, issue_server_certificate, load_ca

# --- the job ------------------------------------------------------------------------------


class _Run(DeployRun):
    """One setup run: what its steps decided, handed from step to step (the key only in memory)."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.config_refs: list[dict] = []
        self.replaced: list[tuple[str, str]] = []
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
            Step("Remove what the service no longer uses", self.cleanup),
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
        want = desired_config(s, client, service, keep=True)
        if want.confirm_reason and not ctx.options.get("confirm"):
            raise JobFailed(f"{want.confirm_reason} {LOGIN_NEEDED} Read the plan, then run setup confirming it.")
        if want.confirm_reason:
            ctx.log(f"The admin confirmed: {want.confirm_reason}")
        spec = service["Spec"] if service else {}
        self.replaced = replaced(spec)
        self.config_refs, created = store(client, want, spec, s.data_dir)
        ctx.log(f"config.yml: storage {s.nfs_path}, http.addr {rc.listen_address(s)}, TLS from {rc.CERT_TARGET};")
        ctx.log(f"  auth.token: realm {rc.realm(s)}, service {s.registry_service}, issuer berth; deletes enabled;")
        ctx.log(f"  shared http.secret from {want.secret_source} (not shown).")
        if want.carried:
            ctx.log(f"  Carried over from the running config: {', '.join(want.carried)}.")
        if created:
            self.changes.append("registry config")
        ctx.log(
            f"{'Created' if created else 'Kept'} the secrets {want.name} (config.yml, 0400) and {want.bundle_name}."
        )

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
        desired = sd.desired_spec(service["Spec"] if service else None, s, self.secret_refs + self.config_refs)
        if service is None:
            self.since = sd.now_utc()
            self.service_id = sd.apply_spec(client, None, desired)
            self.changes.append("service created")
            ctx.log(f"Created the service {s.swarm_service} ({self.service_id[:12]}) from {s.registry_image}.")
            return
        self.service_id = service["ID"]
        changed = sd.differences(client, service["Spec"], desired, s) + sd.restore_replicas(desired)
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
        done = selftest.run_as_berth(self.settings)
        ctx.log(f"Pushed {done.reference} ({done.manifest_digest}) with a token Berth signed for itself,")
        ctx.log("  read the manifest and blobs back intact, and deleted the manifest again.")
        ctx.result.update(selftest=done.manifest_digest)

    def cleanup(self, ctx: StepContext) -> None:
        s = self.settings
        using = {r["SecretName"] for r in self.config_refs}
        remove_replaced(self.swarm(), self.replaced, using, ctx.log)
        rc.prune_copies(
            s.data_dir, next(r["SecretName"] for r in self.config_refs if r["File"]["Name"] == rc.CONFIG_TARGET)
        )
        ctx.result.update(changed=self.changes)
        ctx.log(f"Changed: {', '.join(self.changes)}." if self.changes else "Nothing to change: all was in place.")


def setup_kind(settings: Settings) -> JobDefinition:
    """The ``setup`` job kind for ``settings``."""
    return JobDefinition(JobKind.SETUP, lambda options: _Run(settings).steps())
