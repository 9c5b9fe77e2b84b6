"""``assistd sandbox build``: build the sandbox image from ``sandbox-image/``.

The Dockerfile's base is a build argument. On a machine that can pull from a registry the
default (a slim Python image) is used; with ``local_base`` (or when the pull fails) a base is
made from Debian's packages by ``make-base.sh`` (debootstrap + ``docker import``), which needs
no registry.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from assistd.sandbox.containers import SandboxUnavailable

LOCAL_BASE = "assistd-sandbox-base:bookworm"
REGISTRY_BASE = "python:3.11-slim-bookworm"


def context_dir() -> Path:
    """``sandbox-image/`` of a source checkout, else the copy shipped in the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "sandbox-image", here.parents[1] / "_sandbox_image"):
        if (candidate / "Dockerfile").is_file():
            return candidate
    raise FileNotFoundError("sandbox-image/ not found (neither a checkout nor the wheel's copy)")


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
    """Build ``image`` unless it exists (or ``force``); return the base it was built from."""
    client = _client()
    if _has(client, image) and not force:
        say(f"{image} is already built (--force rebuilds it)")
        return ""
    context = context_dir()
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
