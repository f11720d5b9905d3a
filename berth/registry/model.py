"""Images as Berth shows them: frozen dataclasses for manifests, indexes and configs, and their assembly.

:func:`assemble` puts a tag's manifest or index together with its child manifests and
configs into one :class:`Image`, one :class:`PlatformImage` per platform. Parsing the
registry's documents into these is :mod:`berth.registry.parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from berth.errors import BadUpstreamResponse

UNKNOWN_PLATFORM = "unknown/unknown"

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _frozen_map() -> Mapping[str, str]:
    return _EMPTY


@dataclass(frozen=True)
class Descriptor:
    """A layer, a config, or a child manifest in an index."""

    digest: str
    media_type: str
    size: int
    platform: str | None = None
    annotations: Mapping[str, str] = field(default_factory=_frozen_map, hash=False)


@dataclass(frozen=True)
class ImageManifest:
    """A Docker schema 2 or OCI image manifest."""

    digest: str
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def size_bytes(self) -> int:
        """The compressed image size: config plus layers."""
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index or Docker manifest list."""

    digest: str
    media_type: str
    manifests: tuple[Descriptor, ...]
    attestations: tuple[Descriptor, ...]


@dataclass(frozen=True)
class HistoryEntry:
    """One step of the image's build history."""

    created: datetime | None
    created_by: str
    comment: str
    empty_layer: bool


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config that people look at."""

    created: datetime | None
    os: str
    architecture: str
    variant: str | None
    labels: Mapping[str, str] = field(hash=False)
    env: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    working_dir: str
    user: str
    exposed_ports: tuple[str, ...]
    history: tuple[HistoryEntry, ...]

    @property
    def platform(self) -> str:
        """The platform as "os/arch[/variant]"."""
        return platform_string(self.os, self.architecture, self.variant)


@dataclass(frozen=True)
class PlatformImage:
    """One runnable image: a plain manifest, or one child of an index."""

    platform: str
    manifest: ImageManifest
    config: ImageConfig | None

    @property
    def size_bytes(self) -> int:
        """The compressed size of this platform's image."""
        return self.manifest.size_bytes

    @property
    def created(self) -> datetime | None:
        """When this platform's image was built, if known."""
        return self.config.created if self.config else None


@dataclass(frozen=True)
class Image:
    """What a tag points at, assembled: one `PlatformImage` per platform."""

    digest: str
    media_type: str
    is_index: bool
    images: tuple[PlatformImage, ...]

    @property
    def size_bytes(self) -> int:
        """The total compressed size over all platforms."""
        return sum(image.size_bytes for image in self.images)

    @property
    def created(self) -> datetime | None:
        """The newest build time over all platforms, if any is known."""
        return max((image.created for image in self.images if image.created), default=None)

    @property
    def platforms(self) -> tuple[str, ...]:
        """The platforms, sorted and without repeats."""
        return tuple(sorted({image.platform for image in self.images}))


def platform_string(os: str, architecture: str, variant: str | None) -> str:
    """Format a platform as "os/arch" or "os/arch/variant"."""
    return f"{os}/{architecture}/{variant}" if variant else f"{os}/{architecture}"


def _platform_image(manifest: ImageManifest, platform: str | None, configs: Mapping[str, ImageConfig]) -> PlatformImage:
    config = configs.get(manifest.config.digest)
    name = platform or (config.platform if config else UNKNOWN_PLATFORM)
    return PlatformImage(platform=name, manifest=manifest, config=config)


def _index_images(
    index: ImageIndex, children: Mapping[str, ImageManifest], configs: Mapping[str, ImageConfig]
) -> tuple[PlatformImage, ...]:
    images = []
    for entry in index.manifests:
        child = children.get(entry.digest)
        if not isinstance(child, ImageManifest):
            raise BadUpstreamResponse(
                f"index {index.digest} lists manifest {entry.digest}, which is missing", upstream="registry"
            )
        images.append(_platform_image(child, entry.platform, configs))
    return tuple(images)


def assemble(
    top: ImageManifest | ImageIndex, children: Mapping[str, ImageManifest], configs: Mapping[str, ImageConfig]
) -> Image:
    """Put a tag's manifest or index together with its child manifests and configs (keyed by digest)."""
    if isinstance(top, ImageIndex):
        images = _index_images(top, children, configs)
    else:
        images = (_platform_image(top, None, configs),)
    return Image(digest=top.digest, media_type=top.media_type, is_index=isinstance(top, ImageIndex), images=images)
