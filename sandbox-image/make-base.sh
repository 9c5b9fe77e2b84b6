#!/usr/bin/env bash
# Make a local base image for the sandbox without any container registry: a Debian rootfs
# from debootstrap (with Python and the scientific stack from Debian's own packages), then
# `docker import`. On machines that can pull from a registry this is not needed: build
# sandbox-image/Dockerfile with its default BASE instead.
#
#   sandbox-image/make-base.sh [IMAGE]        (default IMAGE: assistd-sandbox-base:bookworm)
#
# The Debian mirror is the one apt on this machine already uses (read from its sources).
set -euo pipefail
image=${1:-assistd-sandbox-base:bookworm}
suite=${SANDBOX_SUITE:-bookworm}

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image already present"
  exit 0
fi

mirror=${SANDBOX_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  echo "no Debian mirror found in apt's sources; set SANDBOX_MIRROR" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

# BASE_PACKAGES replaces the list (deploy/make-base.sh makes a small Python-only base with it).
if [ -n "${BASE_PACKAGES:-}" ]; then
  read -r -a packages <<<"$BASE_PACKAGES"
else
  packages=(
    ca-certificates tar
    python3 python3-ipykernel python3-jupyter-client
    python3-numpy python3-pandas python3-matplotlib python3-scipy python3-openpyxl
    python3-sympy python3-pil python3-docx python3-pypdf python3-seaborn python3-sklearn
    fonts-dejavu-core
  )
fi
rootfs=$(mktemp -d /var/tmp/assistd-rootfs.XXXXXX)
cleanup() {
  umount "$rootfs/proc" 2>/dev/null || true
  rm -rf "$rootfs"
}
trap cleanup EXIT
echo "debootstrap $suite from $mirror into $rootfs (a few minutes)"
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror"
# The rest through apt inside the new system: it configures packages in dependency order
# (debootstrap's --include does not, and some Python packages then fail to configure).
echo "deb $mirror $suite main" >"$rootfs/etc/apt/sources.list"
mount -t proc proc "$rootfs/proc"
chroot "$rootfs" apt-get update -q
DEBIAN_FRONTEND=noninteractive chroot "$rootfs" \
  apt-get install -y -q --no-install-recommends "${packages[@]}"
chroot "$rootfs" apt-get clean
umount "$rootfs/proc"
# Slimmer image: package caches and docs are not needed at run time.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
echo "importing as $image"
tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
docker image inspect --format '{{.Id}} {{.Size}}' "$image"
