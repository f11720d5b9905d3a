"""Which images the services on the Swarm run: their image references, matched against a registry's images.

A service's image is ``HOST:PORT/REPO:TAG``, ``HOST:PORT/REPO@DIGEST`` or both (Swarm pins
the digest it resolved). A reference with a digest runs exactly that digest; one with a tag
only runs whatever the tag points at.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker


@dataclass(frozen=True)
class ImageUse:
    """One service's image reference, split."""

    service: str
    host: str
    repository: str
    tag: str | None
    digest: str | None

    def runs(self, host: str, repository: str, digest: str, tags: tuple[str, ...]) -> bool:
        """Whether this service runs the image ``digest`` (tagged ``tags``) of ``host/repository``."""
        if self.host != host or self.repository != repository:
            return False
        return self.digest == digest if self.digest else self.tag in tags


def split_reference(service: str, reference: str) -> ImageUse:
    """``HOST/REPO:TAG@DIGEST`` split into its parts (host empty when the reference names none)."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, _, rest = name.partition("/")
    host, repository = (first, rest) if rest and ("." in first or ":" in first or first == "localhost") else ("", name)
    return ImageUse(service, host, repository, tag, digest or None)


def images_in_use(client: docker.DockerClient) -> list[ImageUse]:
    """The image reference of every service on the Swarm (one-off jobs included)."""
    uses = []
    for service in client.api.services():
        spec = service.get("Spec", {})
        image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
        if image:
            uses.append(split_reference(spec.get("Name", service["ID"][:12]), image))
    return uses


def services_running(uses: list[ImageUse], host: str, repository: str, digest: str, tags: tuple[str, ...]) -> list[str]:
    """The names of the services that run this image."""
    return sorted({u.service for u in uses if u.runs(host, repository, digest, tags)})
