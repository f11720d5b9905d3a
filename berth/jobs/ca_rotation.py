"""The rotate-ca job: a new CA, trusted everywhere before it issues, the old one removed only after an overlap.

Docker on a node refuses the registry the moment it serves a certificate from a CA that the
node's ``certs.d`` lacks, so the order is what keeps pulls working:

1. make a new name-constrained CA (staged, trusted by nothing yet);
2. write a bundle of the new and the old CA on every node and verify each by fingerprint;
3. make the new CA the issuer and roll the registry onto a certificate from it, one task at
   a time, exactly as ``rotate-certs`` does (rolled back if it fails);
4. after the grace period (``BERTH_CA_GRACE_HOURS``) or on the admin's ``confirm``, write
   the new CA alone on every node and forget the old one.

Each phase is recorded in the CA directory (:mod:`berth.tls.authority`) as it completes,
so a run that stopped (Berth restarted, a node down) is resumed by the next run from where
it got to. Until the old CA is removed the rotation is reversible: a failed roll puts the
old certificate back and makes the old CA the issuer again. A run during the overlap
without ``confirm`` changes nothing before the grace period ends; Berth's scheduler then
queues the run that removes the old CA.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from berth.config import Settings
from berth.errors import JobFailed
from berth.jobs import rotation
from berth.jobs.distribute import distribute
from berth.jobs.kinds import JobKind
from berth.jobs.runner import JobDefinition, Step, StepContext
from berth.tls.authority import Authority, Phase, RotationState, pem
from berth.tls.certs import fingerprint


class _CARotation:
    """One rotate-ca run; every step first asks the CA directory whether its phase is already done."""

    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.confirm = bool(options.get("confirm"))
        self.authority = Authority(settings.ca_dir)
        self.roll = rotation.CertificateRotation(settings)

    def steps(self) -> list[Step]:
        before_overlap = [
            Step("Trust the old and the new CA on every node", self.trust),
            Step("Issue from the new CA", self.issue_from_new),
            *self.roll.steps(),
        ]
        return [
            Step("Make a new CA", self.stage),
            *[Step(step.name, self._unless_overlapping(step.run)) for step in before_overlap],
            Step("Record the overlap", self.overlap),
            Step("Remove the old CA (after the grace period, or on confirmation)", self.remove),
        ]

    def _state(self) -> RotationState:
        state = self.authority.state()
        assert state is not None  # stage() recorded it first
        return state

    def stage(self, ctx: StepContext) -> None:
        refuse_shared_files(self.settings)
        resumed = self.authority.state()
        state = self.authority.stage(self.settings.registry_hostnames)
        ctx.result["ca"] = {"old": state.old, "new": state.new}
        if resumed is not None:
            ctx.log(f"Resuming the CA rotation begun {state.started_at[:16]} UTC, phase {state.phase}:")
            ctx.log(f"  old CA {state.old}, new CA {state.new}.")
            return
        new = self.authority.staged()
        ctx.log(f"Made the new CA {new.subject.rfc4514_string()}: {state.new},")
        names = ", ".join(self.settings.registry_hostnames)
        ctx.log(f"  valid until {new.not_valid_after_utc:%Y-%m-%d}, constrained to {names}.")
        ctx.log(f"The old CA {state.old} keeps issuing until every node trusts the new one.")

    def trust(self, ctx: StepContext) -> None:
        distribute(self.settings, ctx, bundle=self.authority.overlap_pem())
        self.authority.trust_both()
        ctx.log(f"Recorded: every node trusts both CAs ({self.authority.trust_path} holds the bundle).")

    def issue_from_new(self, ctx: StepContext) -> None:
        self.authority.issue_from_new()
        ctx.log(f"The new CA issues now: {self.settings.ca_dir / 'ca.crt'} holds the new and the old CA,")
        ctx.log("  so Berth verifies the registry with either while the service rolls.")

    def _unless_overlapping(self, run):
        def step(ctx: StepContext) -> None:
            if self._state().reached(Phase.OVERLAP):
                ctx.log("Done in an earlier run: every node trusts both CAs and the registry serves the new one's.")
                return
            run(ctx)

        return step

    def overlap(self, ctx: StepContext) -> None:
        state = self.authority.begin_overlap(timedelta(hours=self.settings.ca_grace_hours))
        ctx.result["ca"].update(phase=str(state.phase), remove_after=state.remove_after)
        ctx.log(f"Overlap since {state.overlap_since[:16] if state.overlap_since else '?'} UTC: the registry")
        ctx.log(f"  serves a certificate from the new CA; nodes trust both until {state.remove_after}.")

    def remove(self, ctx: StepContext) -> None:
        state = self._state()
        if not (self.confirm or state.removal_due(datetime.now(UTC))):
            grace = f"BERTH_CA_GRACE_HOURS={self.settings.ca_grace_hours:g}"
            ctx.log(f"The old CA stays trusted until {state.remove_after} ({grace}).")
            ctx.log("  Berth removes it then; run rotate-ca with confirm to remove it now.")
            return
        new = self.authority.staged()
        ctx.log("Confirmed by the admin." if self.confirm else "The grace period has passed.")
        distribute(self.settings, ctx, bundle=pem(new))
        self.authority.remove_old()
        ctx.result["ca"].update(phase="done", remove_after=None)
        ctx.log(f"Removed the old CA {state.old}: every node and {self.settings.ca_dir / 'ca.crt'}")
        ctx.log(f"  hold the new CA {fingerprint(new)} alone.")


def refuse_shared_files(settings: Settings) -> None:
    """JobFailed when replacing ``ca_dir/ca.crt`` would break a trust that is not the registry's.

    Berth verifies the registry with ``ca_dir/ca.crt`` during and after the rotation. A
    directory CA pointing at that same file would stop verifying the directory (and so
    every login) once it holds the new CA alone; a separate BERTH_REGISTRY_CA would stop
    verifying the registry once it serves the new certificate.
    """
    ca_file = (settings.ca_dir / "ca.crt").resolve()
    if settings.ldap_ca is not None and settings.ldap_ca.resolve() == ca_file:
        raise JobFailed(
            f"BERTH_LDAP_CA is {ca_file}, the CA this job replaces: logins would fail once it holds the new CA"
            " alone. Point BERTH_LDAP_CA at a copy of the CA that signed the directory's certificate, then run"
            " rotate-ca again. Nothing was changed."
        )
    if settings.registry_ca is not None and settings.registry_ca.resolve() != ca_file:
        raise JobFailed(
            f"Berth verifies the registry with {settings.registry_ca}, which this job does not rewrite: it would"
            f" refuse the new certificate. Unset BERTH_REGISTRY_CA (Berth then uses {ca_file}), then run rotate-ca"
            " again. Nothing was changed."
        )


def restore(settings: Settings, ctx: StepContext, error: Exception) -> None:
    """Undo a failed roll (old certificate served, old CA issuing); earlier phases stay to be resumed."""
    authority = Authority(settings.ca_dir)
    state = authority.state()
    if state is None or state.reached(Phase.OVERLAP):
        why = "the rotation had not begun." if state is None else "the new CA serves, verified."
        ctx.log(f"Nothing to undo: {why}")
        return
    try:
        if "old" in ctx.result:  # the roll began: put the old certificate back first
            rotation.restore(settings, ctx, error)
    finally:
        if state.reached(Phase.ISSUING):
            authority.restore_previous()
            ctx.log(f"The old CA {state.old} issues again; nodes and Berth keep trusting both CAs.")
    ctx.log(f"The new CA {state.new} stays staged: run rotate-ca again to resume from here.")


def ca_rotation_kind(settings: Settings) -> JobDefinition:
    """The ``rotate-ca`` job kind for ``settings``."""
    return JobDefinition(
        JobKind.ROTATE_CA,
        lambda options: _CARotation(settings, options).steps(),
        lambda ctx, exc: restore(settings, ctx, exc),
    )
