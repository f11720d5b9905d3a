"""What setup deploys as the registry's ``config.yml``, and what turning on token auth means.

The running config is read (its Swarm config, or Berth's copy of the secret it deployed);
the sections setup does not own are carried over; the new config and the bundle of
Berth's token-signing certificates (``auth.token.rootcertbundle``) become versioned Swarm
secrets. :func:`desired_config` decides all of it without changing anything, so the plan
and the job agree, and says when the admin must confirm: when anonymous access stops, or
when an operator's own ``auth`` section would be replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import docker

from berth.auth.tokens import SigningKeys, signing_dir
from berth.config import Settings
from berth.errors import JobFailed
from berth.events.secret import events_secret
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import service_config_yaml

#: What the plan and the job say when clients will need to log in.
LOGIN_NEEDED = "After this, `docker pull`/`push` need `docker login` with a directory account or an access token."
#: Targets of the secrets this module owns, and their modes (the config holds http.secret).
TARGETS = {rc.CONFIG_TARGET: 0o400, rc.BUNDLE_TARGET: 0o444}


@dataclass(frozen=True)
class DesiredConfig:
    """The config and signing bundle setup wants, named as versioned secrets, and what it means."""

    text: str
    name: str
    bundle: bytes
    bundle_name: str
    carried: tuple[str, ...]
    confirm_reason: str | None
    secret_source: str
    readable: bool

    def payloads(self) -> dict[str, tuple[str, bytes, str]]:
        """Target -> (secret name, data, role label)."""
        return {
            rc.CONFIG_TARGET: (self.name, self.text.encode(), "registry-config"),
            rc.BUNDLE_TARGET: (self.bundle_name, self.bundle, "token-signers"),
        }


def require_public_url(settings: Settings) -> str:
    """The token realm; JobFailed in one line when BERTH_PUBLIC_URL is not set."""
    realm = rc.realm(settings)
    if realm is None:
        raise JobFailed(
            "BERTH_PUBLIC_URL is not set: the registry's token realm is BERTH_PUBLIC_URL/auth/token; "
            "set it to Berth's address as Docker clients reach it."
        )
    return realm


def desired_config(settings: Settings, client: docker.DockerClient, service: dict | None, *, keep: bool):
    """What setup would deploy now (``keep``: remember a new http.secret under BERTH_DATA_DIR)."""
    require_public_url(settings)
    kept = settings.data_dir / rc.KEPT_DIR
    current_text = service_config_yaml(client, service, kept) if service else None
    current = rc.parse(current_text)
    secret, source = rc.http_secret(settings, current_text, keep=keep)
    carried = rc.carried_sections(current)
    text = rc.render(settings, secret, carried, events_secret(settings.events_secret, settings.data_dir))
    bundle = SigningKeys(signing_dir(settings.data_dir)).load().bundle_pem()
    return DesiredConfig(
        text=text,
        name=sd.versioned_name(settings.swarm_service, "config", rc.content_hash(text)),
        bundle=bundle,
        bundle_name=sd.versioned_name(settings.swarm_service, "signers", rc.content_hash(bundle.decode())),
        carried=tuple(k.replace("http_headers", "http.headers") for k in carried),
        confirm_reason=rc.auth_change(settings, current, current is not None) if service else None,
        secret_source=source,
        readable=current is not None,
    )


def in_use(spec: dict) -> dict[str, str | None]:
    """Target -> the name of the secret (or config) the service now has there."""
    secrets, configs = sd.references(spec, "secret"), sd.references(spec, "config")
    return {t: (secrets.get(t) or {}).get("SecretName") or (configs.get(t) or {}).get("ConfigName") for t in TARGETS}


def store(client: docker.DockerClient, want: DesiredConfig, spec: dict, data_dir) -> tuple[list[dict], list[str]]:
    """Create the secrets (Berth keeps a copy of the config first); their references and what was created."""
    rc.keep_copy(data_dir, want.name, want.text)
    current = {**sd.references(spec, "config"), **sd.references(spec, "secret")}
    refs, created = [], []
    for target, (name, data, role) in want.payloads().items():
        secret_id, new = sd.ensure_object(client, "secret", name, data, role)
        refs.append(sd.reference("secret", secret_id, name, target, TARGETS[target], current.get(target)))
        created += [name] if new else []
    return refs, created


def replaced(before: dict) -> list[tuple[str, str]]:
    """``(kind, name)`` of the config and secrets at Berth's targets in the spec ``before`` an update."""
    found = [("secret", r.get("SecretName", "")) for t, r in sd.references(before, "secret").items() if t in TARGETS]
    found += [("config", r.get("ConfigName", "")) for t, r in sd.references(before, "config").items() if t in TARGETS]
    return found


def remove_replaced(client: docker.DockerClient, old: list[tuple[str, str]], keep: set[str], log: Callable) -> None:
    """Remove the old config and secrets Berth made (labelled), once the service no longer uses them."""
    for kind, name in old:
        if name in keep:
            continue
        found = sd.find_object(client, kind, name)
        if found is None:
            continue
        if sd.LABEL not in (found.get("Spec", {}).get("Labels") or {}):
            log(f"Left the {kind} {name} in place: Berth did not make it.")
            continue
        problem = sd.remove_object(client, kind, name)
        log(f"Removed the old {kind} {name}." if problem is None else f"Kept the old {kind} {name}: {problem}")
