"""The registry's read-only switch for garbage collection, through a new versioned config or secret.

Distribution stops accepting pushes and deletes with
``storage.maintenance.readonly.enabled: true``; pulls go on. The registry reads its
``config.yml`` at start, so the switch is a new versioned Swarm object (of the same kind
as the one the service uses now: a config, or a secret) holding the same YAML with that
flag, rolled like a certificate swap. Switching back puts the service's original
reference back; the original object is never touched, so nothing is lost either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
import yaml

from berth.errors import JobFailed
from berth.swarm import deploy as sd
from berth.swarm.inspect import registry_config_path

LABEL_ROLE = "registry-config-readonly"


@dataclass(frozen=True)
class ConfigReference:
    """Where the service's config.yml comes from: ``kind`` (config or secret) and the reference."""

    kind: str
    target: str
    reference: dict

    @property
    def name(self) -> str:
        return self.reference.get("ConfigName" if self.kind == "config" else "SecretName", "")


def config_reference(service: dict) -> ConfigReference:
    """The config or secret reference the registry reads its config.yml from; JobFailed when there is none."""
    target = registry_config_path(service)
    for kind in ("config", "secret"):
        found = sd.references(service["Spec"], kind).get(target)
        if found is not None:
            return ConfigReference(kind, target, found)
    raise JobFailed(
        f"The service's {target} is not a Swarm config or secret, so Berth cannot switch it to read-only;"
        " run the setup job so the registry's config.yml is deployed by Berth."
    )


def with_readonly(config_text: str, enabled: bool = True) -> str:
    """The same config.yml with ``storage.maintenance.readonly.enabled`` set to ``enabled``."""
    config = yaml.safe_load(config_text)
    if not isinstance(config, dict) or not isinstance(config.get("storage"), dict):
        raise JobFailed("The registry's config.yml has no storage section; Berth will not guess one.")
    maintenance = config["storage"].setdefault("maintenance", {}) or {}
    config["storage"]["maintenance"] = maintenance
    maintenance.setdefault("readonly", {})
    maintenance["readonly"] = {**(maintenance.get("readonly") or {}), "enabled": enabled}
    header = "# Berth's garbage collection: this registry is read-only until the job switches it back.\n"
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def is_readonly(config: dict | None) -> bool:
    """Whether a parsed config.yml says the registry is read-only."""
    storage = (config or {}).get("storage") if isinstance(config, dict) else None
    maintenance = (storage or {}).get("maintenance") if isinstance(storage, dict) else None
    readonly = (maintenance or {}).get("readonly") if isinstance(maintenance, dict) else None
    return bool(isinstance(readonly, dict) and readonly.get("enabled"))


def switch_to(client: docker.DockerClient, service: dict, current: ConfigReference, text: str, service_name: str):
    """Create the object holding ``text`` (same kind as ``current``) and roll the service onto it.

    Returns the new reference (also what :func:`berth.swarm.deploy.remove_object` removes later).
    """
    import hashlib

    name = sd.versioned_name(service_name, "readonly", hashlib.sha256(text.encode()).hexdigest())
    object_id, _ = sd.ensure_object(client, current.kind, name, text.encode(), LABEL_ROLE)
    mode = current.reference.get("File", {}).get("Mode", 0o444)
    new = sd.reference(current.kind, object_id, name, current.target, mode, current.reference)
    sd.apply_spec(client, service["ID"], sd.with_references(service["Spec"], current.kind, [new]))
    return new


def put_back(client: docker.DockerClient, service_id: str, original: ConfigReference) -> bool:
    """Roll the service back onto ``original``; False when it already uses it (nothing sent)."""
    service = client.api.inspect_service(service_id)
    in_use = sd.references(service["Spec"], original.kind).get(original.target)
    if in_use is not None and in_use == original.reference:
        return False
    sd.apply_spec(client, service_id, sd.with_references(service["Spec"], original.kind, [original.reference]))
    return True
