"""Berth's own image on the devstack engine, with nothing pulled: ``up --swarm --with-berth-image``.

1. A Debian base image made here, once per machine: ``debootstrap --variant=minbase
   --include=python3,python3-venv,nginx bookworm`` from the mirror apt already uses, trimmed
   (docs, man pages, locales, apt lists and caches) and tarred into the machine-wide cache
   (``$XDG_CACHE_HOME/berth-devstack/base-<packages>.tar``, default ``~/.cache``), reused by
   every run and state directory. A lock makes concurrent first builds wait for one another.
   nginx is there for the stack's front (``berth-front:devstack``, step 4): the test
   engines pull nothing, so the official nginx image is out of reach.
2. ``docker import`` of that tar as ``berth-base:test`` on the devstack engine.
3. The wheels of ``requirements.txt`` in ``build/wheels`` (offline from what is there, else
   ``pip wheel`` from the index, as ``make image`` does), then ``docker build`` of the
   project's ``Dockerfile`` with ``BASE=berth-base:test`` on the host network.
4. ``berth-front:devstack``: the same base running Debian's nginx in the foreground, the
   image ``stack.yml``'s front service runs in the deployed-stack tests.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors

PROJECT = Path(__file__).resolve().parent.parent
DEBOOTSTRAP = "/usr/sbin/debootstrap"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = "berth-base:test"
BERTH_IMAGE = "berth:devstack"
FRONT_IMAGE = "berth-front:devstack"
#: What debootstrap adds to minbase (the cached tar's name carries a hash of it).
PACKAGES = ("python3", "python3-venv", "nginx")
FRONT_DOCKERFILE = f"""FROM {BASE_IMAGE}
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
"""
#: What a container never needs: removed from the root filesystem before it is tarred.
TRIM = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
)
_BUILD_TIMEOUT = 900


class ImageError(RuntimeError):
    """The base image or Berth's image could not be made; ``log`` names the output."""

    def __init__(self, reason: str, log: Path | None = None) -> None:
        self.reason = reason
        self.log = log
        super().__init__(reason)


def cache_dir() -> Path:
    """The machine-wide cache of the base image (``$XDG_CACHE_HOME/berth-devstack``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "berth-devstack"


def debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses for ``bookworm`` itself (not -security, not -updates)."""
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        for line in _lines(path):
            parts = re.sub(r"\[[^]]*\]", "", line).split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in "\n".join(_lines(path)).split("\n\n"):
            fields = dict(_field(line) for line in stanza.splitlines() if ":" in line)
            if SUITE in fields.get("suites", "").split() and "deb" in fields.get("types", "").split():
                return fields["uris"].split()[0]
    return DEFAULT_MIRROR


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]


def _field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def base_tar(log: Path) -> tuple[Path, float]:
    """The cached base root filesystem as a tar, made first if missing; ``(path, seconds spent)``."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"base-{hashlib.sha256(','.join(PACKAGES).encode()).hexdigest()[:8]}.tar"
    began = time.monotonic()
    with open(cache / "base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent first build: wait, then reuse its tar
        if not target.is_file():
            _make_base_tar(target, log)
    return target, time.monotonic() - began


def _make_base_tar(target: Path, log: Path) -> None:
    if not os.access(DEBOOTSTRAP, os.X_OK):
        raise ImageError(f"{DEBOOTSTRAP} is not installed (Debian package debootstrap)")
    work = Path(tempfile.mkdtemp(prefix="base-", dir=target.parent))
    rootfs = work / "rootfs"
    argv = [DEBOOTSTRAP, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), debian_mirror()]
    try:
        _run(argv, log, "debootstrap")
        for relative in TRIM:
            path = rootfs / relative
            if path.is_dir():
                shutil.rmtree(path)
                path.mkdir()
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".tar.partial")
        _run(["tar", "-C", str(rootfs), "--one-file-system", "-cf", str(partial), "."], log, "tar")
        partial.replace(target)
    finally:
        for point in ("proc", "sys", "dev/pts"):  # debootstrap mounts these; a failure leaves them
            subprocess.run(["umount", "-l", str(rootfs / point)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: list[str], log: Path, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=_BUILD_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageError(f"{what} failed: {exc}", log) from exc
    if done.returncode != 0:
        raise ImageError(f"{what} exited with status {done.returncode}", log)


def import_base(client: docker.DockerClient, tar: Path) -> None:
    """``docker import`` the base tar as ``berth-base:test`` unless the engine has it."""
    try:
        client.images.get(BASE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    repository, tag = BASE_IMAGE.split(":")
    client.api.import_image_from_file(str(tar), repository=repository, tag=tag)


def build_wheels(project: Path, log: Path) -> Path:
    """``build/wheels`` holding every wheel of ``requirements.txt`` (from the index if missing)."""
    wheels = project / "build" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-w", str(wheels)]
    requirements = ["-r", str(project / "requirements.txt")]
    try:
        _run([*base, "--no-index", "--find-links", str(wheels), *requirements], log, "pip wheel (offline)")
    except ImageError:
        _run([*base, *requirements], log, "pip wheel")
    return wheels


def build_berth(client: docker.DockerClient, tag: str = BERTH_IMAGE, project: Path = PROJECT) -> str:
    """``docker build`` Berth's image on ``berth-base:test`` (host network); return its ID."""
    try:
        image, _ = client.images.build(
            path=str(project),
            tag=tag,
            buildargs={"BASE": BASE_IMAGE},
            network_mode="host",
            rm=True,
            forcerm=True,
            timeout=_BUILD_TIMEOUT,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)[-800:]
        raise ImageError(f"docker build failed: {exc.msg}; {tail.strip()}") from exc
    return str(image.id)


def build_front(client: docker.DockerClient, tag: str = FRONT_IMAGE) -> str:
    """``docker build`` the front's image (Debian's nginx in the foreground) on the base; its ID."""
    try:
        image, _ = client.images.build(fileobj=io.BytesIO(FRONT_DOCKERFILE.encode()), tag=tag, rm=True)
    except docker.errors.BuildError as exc:
        raise ImageError(f"docker build of the front failed: {exc.msg}") from exc
    return str(image.id)


def berth_image(client: docker.DockerClient, log: Path) -> dict[str, float]:
    """Make (or reuse) the base, import it, build Berth's image and the front's; return each step's seconds."""
    timings: dict[str, float] = {}
    tar, timings["base_tar"] = base_tar(log)
    mark = time.monotonic()
    import_base(client, tar)
    timings["base_import"] = time.monotonic() - mark
    mark = time.monotonic()
    build_wheels(PROJECT, log)
    timings["wheels"] = time.monotonic() - mark
    mark = time.monotonic()
    build_berth(client)
    timings["berth_build"] = time.monotonic() - mark
    build_front(client)
    return timings
