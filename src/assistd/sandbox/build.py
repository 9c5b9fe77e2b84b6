"""``assistd sandbox build``: build the sandbox image from ``sandbox-image/``.

The Dockerfile's base is a build argument. On a machine that can pull from a registry the
default (a slim Python image) is used; with ``local_base`` (or when the pull fails) a base is
made from Debian's packages by ``make-base.sh`` (debootstrap + ``docker import``), which needs
no registry.

The image carries a hash of ``sandbox-image/`` in a label: an image built from another
version of the driver or Dockerfile is rebuilt, not taken as built.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from assistd.sandbox.containers import SandboxUnavailable

LOCAL_BASE = "assistd-sandbox-base:bookworm"
REGISTRY_BASE = "python:3.11-slim-bookworm"
HASH_LABEL = "io.assistd.context-hash"


def context_dir() -> Path:
    """``sandbox-image/`` of a source checkout, else the copy shipped in the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "sandbox-image", here.parents[1] / "_sandbox_image"):
        if (candidate / "Dockerfile").is_file():
            return candidate
    raise FileNotFoundError("sandbox-image/ not found (neither a checkout nor the wheel's copy)")


def context_hash(context: Path) -> str:
    """A hash of the build context's files (names and bytes; hidden files and caches aside)."""
    digest = hashlib.sha256()
    for path in sorted(context.rglob("*")):
        relative = path.relative_to(context)
        if not path.is_file() or any(
            part.startswith(".") or part == "__pycache__" for part in relative.parts
        ):
            continue
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def built_hash(client: docker.DockerClient, image: str) -> str | None:
    """The context hash ``image`` was built from ("" for an unlabelled image), None when
    there is no such image."""
    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    labels = found.labels or {}
    return str(labels.get(HASH_LABEL, ""))


def _client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise SandboxUnavailable(f"no Docker engine reachable: {exc}") from exc
    return client


def _has(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: docker.DockerClient, image: str, say: Callable[[str], None]) -> bool:
    say(f"pulling {image}")
    try:
        client.images.pull(image)
    except docker.errors.APIError as exc:
        say(f"cannot pull {image} ({exc.explanation or exc}); making a local base instead")
        return False
    return True


def _make_local_base(context: Path, say: Callable[[str], None]) -> None:
    say(f"making the base image {LOCAL_BASE} from Debian packages (debootstrap, a few minutes)")
    subprocess.run(["bash", str(context / "make-base.sh"), LOCAL_BASE], check=True)


def build(
    image: str,
    *,
    base: str | None = None,
    local_base: bool = False,
    force: bool = False,
    say: Callable[[str], None] = print,
) -> str:
    """Build ``image`` unless it was built from this ``sandbox-image/`` (or ``force``);
    return the base it was built from ("" when it was already built)."""
    client = _client()
    context = context_dir()
    digest = context_hash(context)
    current = built_hash(client, image)
    if current == digest and not force:
        say(f"{image} is already built (--force rebuilds it)")
        return ""
    if current is not None and current != digest:
        say(f"{image} was built from another version of sandbox-image/: rebuilding it")
    if base is None:
        if not local_base and (_has(client, REGISTRY_BASE) or _pull(client, REGISTRY_BASE, say)):
            base = REGISTRY_BASE
        else:
            if not _has(client, LOCAL_BASE):
                _make_local_base(context, say)
            base = LOCAL_BASE
    say(f"building {image} from {base}")
    try:
        for chunk in client.api.build(
            path=str(context),
            tag=image,
            buildargs={"BASE": base},
            labels={HASH_LABEL: digest},
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "stream" in chunk:
                text = str(chunk["stream"]).rstrip()
                if text:
                    say(text)
            elif "error" in chunk:
                raise RuntimeError(f"building {image} failed: {chunk['error']}")
    except docker.errors.APIError as exc:
        raise RuntimeError(f"building {image} failed: {exc}") from exc
    say(f"built {image}")
    return base
