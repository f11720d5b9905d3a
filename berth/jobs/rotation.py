"""The certificate rotation job: a new key and certificate from the same CA, swapped in without losing the old.

The registry reads its certificate once, at start, so a new certificate means new tasks:
the new certificate and key become new versioned Swarm secrets, the service is updated to
mount them at the same targets (one task at a time, rolled back by Swarm if a new task
fails), and only when the registry is seen serving the new certificate, verified against
the CA, are the old secrets removed and ``ca_dir/server.crt`` replaced.

When the registry uses Berth's token auth (a secret at ``rootcertbundle``), the same roll
rotates the token-signing key with overlap: the next key is staged, the registry gets a
bundle trusting the current and the next key, and only after the registry is seen
accepting a token signed with the next key does Berth promote it (sign with it). The old
key stays in the bundle until the next rotation, so a token in flight is never refused.

If any step fails, :func:`restore` puts the old secrets back (unless Swarm already rolled
back), waits for the service, checks that the old certificate is served again, removes
the new secrets and forgets the staged key. ``ctx.result`` keeps what is needed for that:
secret names and references (never secret data) and both fingerprints.
"""

from __future__ import annotations

from datetime import datetime

import requests
from cryptography.hazmat.primitives.serialization import Encoding

from berth.auth.tokens import SigningKeys, TokenIssuer, signing_dir
from berth.config import Settings
from berth.errors import JobFailed
from berth.jobs.checks import DeployRun, chains_to, check_api, connect, secret_names, verify_served, write_held
from berth.jobs.kinds import JobKind
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import find_service
from berth.tls.certs import describe, served_certificate
from berth.tls.issue import issue_server_certificate, load_ca

TARGETS = (rc.CERT_TARGET, rc.KEY_TARGET)
#: The bundle delivered during a rotation: the key signing now and the one that will.
OVERLAP = ("current", "next")


class CertificateRotation(DeployRun):
    """One rotation run; the new private key lives only here until it is a Swarm secret."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.service: dict = {}

    def steps(self) -> list[Step]:
        return [
            Step("Check the running service", self.check),
            Step("Issue a new certificate", self.issue),
            Step("Stage the next token-signing key", self.stage),
            Step("Store it as new secrets", self.store),
            Step("Roll the service onto the new secrets", self.update),
            Step("Wait for convergence", self.converge),
            Step("Verify the new certificate is served", self.verify),
            Step("Remove the old secrets", self.finish),
        ]

    def check(self, ctx: StepContext) -> None:
        s = self.settings
        self.client = connect(s)
        service = find_service(self.client, s.swarm_service)
        if service is None:
            raise JobFailed(f"There is no service {s.swarm_service}; run the setup job first.")
        refs = sd.references(service["Spec"], "secret")
        missing = [t for t in TARGETS if t not in refs]
        if missing:
            raise JobFailed(f"The service {s.swarm_service} has no secret at {missing[0]}; run the setup job first.")
        served = served_certificate(s.registry_url, s.ca_dir / "ca.crt")
        if served.info is None:
            raise JobFailed(f"The registry does not answer TLS now ({served.error}); fix it or run setup first.")
        self.service = service
        old = [refs[t] for t in (*TARGETS, rc.BUNDLE_TARGET) if t in refs]
        ctx.result["old"] = {
            "fingerprint": served.info.sha256,
            "not_after": served.info.not_after.isoformat(),
            "secrets": [r["SecretName"] for r in old],
            "references": old,
        }
        ctx.log(f"The registry serves {served.info.sha256}, valid until {served.info.not_after:%Y-%m-%d %H:%M} UTC")
        ctx.log(f"  ({'verified' if served.verified else 'NOT verified: ' + str(served.error)}), from the secrets")
        ctx.log(f"  {', '.join(r['SecretName'] for r in old)} (service version {service['Version']['Index']}).")

    def issue(self, ctx: StepContext) -> None:
        s = self.settings
        ca_cert, ca_key = load_ca(s.ca_dir)
        issued = issue_server_certificate(ca_cert, ca_key, s.registry_hostnames, s.cert_days)
        self.cert, self.key_pem = issued.certificate, issued.key_pem
        if not chains_to(self.cert, ca_cert):
            raise JobFailed(f"ca.key in {s.ca_dir} does not belong to ca.crt: clients would refuse the certificate.")
        info = describe(self.cert)
        ctx.result["new"] = {"fingerprint": info.sha256, "not_after": info.not_after.isoformat()}
        ctx.log(f"Issued {info.sha256} from the CA in {s.ca_dir},")
        ctx.log(f"  for {', '.join(info.names())}, valid until {info.not_after:%Y-%m-%d %H:%M} UTC.")

    def store(self, ctx: StepContext) -> None:
        assert self.cert is not None and self.key_pem is not None and self.client is not None
        names = secret_names(self.settings, describe(self.cert).sha256)
        ctx.result["new"]["secrets"] = list(names)
        data = (self.cert.public_bytes(Encoding.PEM), self.key_pem)
        old = {r["File"]["Name"]: r for r in ctx.result["old"]["references"]}
        refs = []
        for name, payload, target, mode in zip(names, data, TARGETS, (0o444, 0o400), strict=True):
            secret_id, _ = sd.ensure_object(
                self.client, "secret", name, payload, "registry-" + target.rsplit(".", 1)[1]
            )
            refs.append(sd.reference("secret", secret_id, name, target, mode, old.get(target)))
        self.key_pem = None
        ctx.log(f"Created the secrets {names[0]} (certificate) and {names[1]} (key, mode 0400).")
        if ctx.result.get("signing"):
            bundle = self.keys().bundle_pem(OVERLAP)
            name = sd.versioned_name(self.settings.swarm_service, "signers", rc.content_hash(bundle.decode()))
            ctx.result["new"]["secrets"].append(name)
            secret_id, _ = sd.ensure_object(self.client, "secret", name, bundle, "token-signers")
            refs.append(sd.reference("secret", secret_id, name, rc.BUNDLE_TARGET, 0o444, old.get(rc.BUNDLE_TARGET)))
            ctx.log(f"Created the secret {name}: the current and the next token-signing certificates.")
        ctx.result["new"]["references"] = refs

    def keys(self) -> SigningKeys:
        """Berth's token-signing keys (shared with the token server through BERTH_DATA_DIR)."""
        return SigningKeys(signing_dir(self.settings.data_dir))

    def stage(self, ctx: StepContext) -> None:
        refs = sd.references(self.service["Spec"], "secret")
        if rc.BUNDLE_TARGET not in refs:
            ctx.log("The registry does not use Berth's token auth (no signing bundle): no signing key to rotate.")
            return
        self.keys().stage_next()
        ctx.result["signing"] = True
        ctx.log("Staged the next token-signing key: trusted by the registry after this roll, signing nothing yet.")

    def update(self, ctx: StepContext) -> None:
        assert self.client is not None
        spec = sd.with_references(self.service["Spec"], "secret", ctx.result["new"]["references"])
        ctx.result["update_sent_at"] = sd.now_utc().isoformat()
        ctx.result["updated"] = True
        sd.apply_spec(self.client, self.service["ID"], spec)
        ctx.log(f"Updated the service {self.settings.swarm_service}: new secrets at {', '.join(TARGETS)};")
        ctx.log("  one task at a time, Swarm rolls back if a new task fails within the monitor period.")

    def converge(self, ctx: StepContext) -> None:
        assert self.client is not None
        since = datetime.fromisoformat(ctx.result["update_sent_at"])
        took = sd.wait_converged(
            self.client, self.service["ID"], timeout=self.settings.swarm_converge_timeout, since=since, log=ctx.log
        )
        ctx.log(f"Converged in {took:.1f} s (stable for {sd.MONITOR_SECONDS} s).")

    def verify(self, ctx: StepContext) -> None:
        verify_served(self.settings, ctx.result["new"]["fingerprint"], ctx, wait=5.0)
        check_api(self.settings, ctx)
        if ctx.result.get("signing"):
            _accepts_next_key(self.settings, self.keys(), ctx)
        ctx.result["verified"] = True

    def finish(self, ctx: StepContext) -> None:
        assert self.cert is not None and self.client is not None
        write_held(self.settings, self.cert.public_bytes(Encoding.PEM), ctx)
        if ctx.result.get("signing"):
            self.keys().promote_next()
            ctx.log("Berth signs tokens with the new key now; the old one stays trusted until the next rotation.")
        for name in ctx.result["old"]["secrets"]:
            problem = sd.remove_secret(self.client, name)
            ctx.log(f"Removed the old secret {name}." if problem is None else f"Kept the old secret {name}: {problem}")


def _accepts_next_key(settings: Settings, keys: SigningKeys, ctx: StepContext) -> None:
    """``GET /v2/`` with a token signed by the staged key answers 200: the registry trusts it."""
    token = TokenIssuer(keys.load("next"), settings.registry_service or "").issue("berth-rotation", []).token
    try:
        response = requests.get(
            f"{settings.registry_url}/v2/",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(settings.ca_dir / "ca.crt"),
            timeout=10,
        )
    except requests.RequestException as exc:
        raise JobFailed(f"GET /v2/ with a token of the next key failed: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise JobFailed(f"The registry refuses tokens signed with the next key (HTTP {response.status_code}).")
    ctx.log("The registry accepts a token signed with the next key (GET /v2/: HTTP 200).")


def restore(settings: Settings, ctx: StepContext, error: Exception) -> None:
    """Undo a failed rotation: old secrets back in the service, old certificate served, new secrets gone."""
    result = ctx.result
    if result.get("verified"):
        ctx.log("The new certificate is already served and verified; nothing to undo.")
        return
    if result.get("signing"):
        SigningKeys(signing_dir(settings.data_dir)).discard_next()
        ctx.log("Forgot the staged token-signing key: Berth keeps signing with the current one.")
    new = result.get("new", {}).get("secrets")
    if not new:
        ctx.log("Nothing was changed in the Swarm; the old certificate keeps serving.")
        return
    client = connect(settings)
    if result.get("updated"):
        service = find_service(client, settings.swarm_service)
        if service is None:
            raise JobFailed(f"The service {settings.swarm_service} is gone; run setup.")
        since = datetime.fromisoformat(result["update_sent_at"])
        using = {r.get("SecretName") for r in sd.references(service["Spec"], "secret").values()}
        policy = service["Spec"].get("UpdateConfig")
        if using & set(new):
            since = sd.now_utc()
            spec = sd.with_references(service["Spec"], "secret", result["old"]["references"])
            # Swarm's own rollback of this update would return to its previous spec: the new secrets.
            # A task failing while the old ones come back (on the host network a replacement can meet
            # its predecessor's port) is restarted by the restart policy instead.
            spec["UpdateConfig"] = {**(policy or {}), "FailureAction": "continue"}
            sd.apply_spec(client, service["ID"], spec)
            ctx.log(f"Rolled the service back to the old secrets {', '.join(result['old']['secrets'])}.")
        else:
            ctx.log("Swarm has already rolled the service back to the old secrets.")
        timeout = max(settings.swarm_converge_timeout, sd.RESTORE_MIN_SECONDS)
        took = sd.wait_converged(client, service["ID"], timeout=timeout, since=since, restore=True, log=ctx.log)
        ctx.log(f"The service runs the old spec again ({took:.1f} s).")
        if using & set(new) and policy is not None:
            restored = find_service(client, settings.swarm_service) or service
            sd.apply_spec(client, restored["ID"], {**restored["Spec"], "UpdateConfig": policy})  # restarts no task
            ctx.log(f"Put the update policy back (failure action {policy.get('FailureAction')}).")
        try:
            verify_served(settings, result["old"]["fingerprint"], ctx)
            ctx.log(f"The old certificate is served again: {result['old']['fingerprint']}.")
        except JobFailed as exc:
            ctx.log(f"WARNING: the registry does not serve the old certificate again: {exc.message}")
    for name in new:
        problem = sd.remove_secret(client, name)
        ctx.log(f"Removed the new secret {name}." if problem is None else f"Could not remove {name}: {problem}")
    ctx.log(f"{settings.ca_dir / 'server.crt'} still holds the old certificate.")


def rotation_kind(settings: Settings) -> JobDefinition:
    """The ``rotate-certs`` job kind for ``settings``."""
    return JobDefinition(
        JobKind.ROTATE_CERTS,
        lambda options: CertificateRotation(settings).steps(),
        lambda ctx, exc: restore(settings, ctx, exc),
    )
