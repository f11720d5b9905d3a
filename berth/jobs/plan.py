"""The setup job's plan: what it would keep, create or update now, and what needs confirming.

Shown to the admin before setup runs (``/jobs/setup/plan``). It makes the same decisions
as the job (:mod:`berth.jobs.desired`) without changing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.config import Settings
from berth.errors import JobFailed
from berth.findings import Level
from berth.jobs.checks import connect, held_certificate, secret_names
from berth.jobs.desired import LOGIN_NEEDED, DesiredConfig, desired_config, in_use
from berth.nfs import inspect as nfs
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import find_service
from berth.tls.certs import describe


@dataclass(frozen=True)
class PlanItem:
    """One thing setup would do: ``keep``, ``create`` or ``update`` it."""

    action: str
    what: str
    detail: str
    confirm: bool = False


def plan(settings: Settings) -> list[PlanItem]:
    """What setup would do now, without changing anything (shown to the admin before running)."""
    s = settings
    has_ca = (s.ca_dir / "ca.crt").is_file() and (s.ca_dir / "ca.key").is_file()
    items = [_nfs_item(s), PlanItem("keep" if has_ca else "create", "CA", str(s.ca_dir))]
    client = connect(s)
    held, reason = held_certificate(s, client) if has_ca else (None, "no CA yet")
    items.append(PlanItem("keep" if held else "create", "server certificate", reason))
    service = find_service(client, s.swarm_service)
    spec = service["Spec"] if service else {}
    try:
        want = desired_config(s, client, service, keep=False)
    except JobFailed as exc:
        return [*items, PlanItem("stop", "registry access", exc.message, confirm=False)]
    items += _config_items(s, want, spec, service is not None)
    names = secret_names(s, describe(held).sha256) if held else ("(new)", "(new)")
    using = tuple(
        (sd.references(spec, "secret").get(t) or {}).get("SecretName") for t in (rc.CERT_TARGET, rc.KEY_TARGET)
    )
    kept = using == names
    detail = ", ".join(names) if kept else "new versions"
    items.append(PlanItem("keep" if kept else "create", "certificate and key secrets", detail))
    if service is None:
        items.append(PlanItem("create", f"service {s.swarm_service}", f"{s.registry_image}, storage {s.nfs_path}"))
        return items
    refs = [
        sd.reference("secret", "", names[0], rc.CERT_TARGET, 0o444),
        sd.reference("secret", "", names[1], rc.KEY_TARGET, 0o400),
        sd.reference("secret", "", want.name, rc.CONFIG_TARGET, 0o400),
        sd.reference("secret", "", want.bundle_name, rc.BUNDLE_TARGET, 0o444),
    ]
    desired = sd.desired_spec(spec, s, refs)
    changed = sd.differences(client, spec, desired, s) + sd.restore_replicas(desired)
    items.append(
        PlanItem("update" if changed else "keep", f"service {s.swarm_service}", ", ".join(changed) or "as wanted")
    )
    return items


def _nfs_item(s: Settings) -> PlanItem:
    report = nfs.inspect(s.nfs_path, deadline=s.nfs_deadline, write_probe=False)
    worst = max(report.findings, key=lambda f: f.level.rank, default=None)
    note = worst.message if worst else "checked first"
    if report.error or (worst and worst.level == Level.CRITICAL):
        note = f"CRITICAL: {report.error or note} Setup stops here unless confirmed."
        return PlanItem("keep", f"NFS path {s.nfs_path}", note, confirm=True)
    return PlanItem("keep", f"NFS path {s.nfs_path}", note)


def _config_items(s: Settings, want: DesiredConfig, spec: dict, exists: bool) -> list[PlanItem]:
    """Plan lines for registry access, config.yml and the signing certificates."""
    now = in_use(spec)
    if want.confirm_reason:
        access = PlanItem("update", "registry access", f"{want.confirm_reason} {LOGIN_NEEDED}", confirm=True)
    elif exists:
        access = PlanItem("keep", "registry access", f"token auth by Berth, realm {rc.realm(s)}")
    else:
        access = PlanItem("create", "registry access", f"token auth by Berth from the start. {LOGIN_NEEDED}")
    config_now = now[rc.CONFIG_TARGET]
    carried = f"; carried over: {', '.join(want.carried)}" if want.carried else ""
    config_action = "keep" if config_now == want.name else ("update" if config_now else "create")
    config_detail = want.name if config_now == want.name else f"{config_now or '(none)'} → {want.name} (a secret)"
    bundle_now = now[rc.BUNDLE_TARGET]
    bundle_action = "keep" if bundle_now == want.bundle_name else ("update" if bundle_now else "create")
    return [
        access,
        PlanItem(config_action, "registry config.yml", config_detail + carried),
        PlanItem(bundle_action, "token-signing certificates", want.bundle_name),
    ]
