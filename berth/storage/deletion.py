"""Deleting an image: what goes with it (every tag on its digest), whether a service runs it, the delete.

The registry deletes a manifest by digest, so every tag pointing at it goes too. The
confirmation page shows those tags, the size and the Swarm services that run the image,
and the admin types the repository name. The delete itself uses a registry client whose
tokens may carry ``delete`` (:meth:`berth.services.Services.deleting_registry`).
"""

from __future__ import annotations

from dataclasses import dataclass

from berth.catalog.service import CatalogService
from berth.config import Settings
from berth.errors import Conflict, NotFound
from berth.registry.client import RegistryClient
from berth.registry.references import check_name, is_digest
from berth.swarm.images import ImageUse, images_in_use, services_running


@dataclass(frozen=True)
class DeletePlan:
    """What deleting ``digest`` from ``repository`` takes away."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    size_bytes: int | None
    services: tuple[str, ...]
    services_known: bool


def swarm_uses(settings: Settings) -> list[ImageUse] | None:
    """The image references of the Swarm's services, or None when the engine cannot be asked."""
    from berth.swarm.inspect import docker_client

    try:
        client = docker_client(settings.docker_host, 10.0)
    except Exception:  # noqa: BLE001 - no engine: the page says "unknown", the delete is still the admin's call
        return None
    try:
        return images_in_use(client)
    except Exception:  # noqa: BLE001
        return None
    finally:
        client.close()


def plan_delete(catalog: CatalogService, settings: Settings, repository: str, digest: str) -> DeletePlan:
    """The tags, size and services of image ``digest`` in ``repository`` (NotFound when absent)."""
    check_name(repository)
    if not is_digest(digest):
        raise NotFound(f"{digest[:80]!r} is not a digest.")
    _, image = catalog.image(repository, digest)
    tags = tuple(sorted(t for t, d in catalog.tag_digests(repository).items() if d == digest))
    uses = swarm_uses(settings)
    running = services_running(uses or [], settings.registry_host, repository, digest, tags)
    return DeletePlan(repository, digest, tags, image.size_bytes, tuple(running), uses is not None)


def delete_image(client: RegistryClient, catalog: CatalogService, plan: DeletePlan, typed_name: str) -> DeletePlan:
    """Delete the image of ``plan`` once the admin typed its repository name; the plan of what went."""
    if typed_name.strip() != plan.repository:
        raise Conflict("Type the repository name exactly to confirm the delete.")
    try:
        client.delete_manifest(plan.repository, plan.digest)
    finally:
        catalog.forget(plan.repository)
    return plan
