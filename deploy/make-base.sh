#!/usr/bin/env bash
# Make a small local base image for the server and Postgres images without any container
# registry: a minimal Debian rootfs with Python 3.11 (debootstrap), then `docker import`.
#
#   deploy/make-base.sh [IMAGE]        (default IMAGE: assistd-base:bookworm)
#   ASSISTD_BASE=assistd-base:bookworm docker-compose -f docker-compose.yml -f docker-compose.local.yml up -d
#
# The compose override builds from assistd-sandbox-base:bookworm by default (made anyway for
# the sandbox, with the scientific stack: ~1.25 GB); this one has only Python and is much
# smaller. Needs root, debootstrap and a few minutes. The Debian mirror is the one apt on this
# machine already uses (read from its sources; SANDBOX_MIRROR overrides it).
set -euo pipefail
image=${1:-assistd-base:bookworm}
suite=${BASE_SUITE:-bookworm}

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

rootfs=$(mktemp -d /var/tmp/assistd-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite from $mirror into $rootfs"
# python3-venv brings ensurepip (pip in new virtualenvs); tzdata and ca-certificates for TLS
# to model backends and correct time zones.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tzdata \
  "$suite" "$rootfs" "$mirror"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
echo "importing as $image"
tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
docker image inspect --format '{{.Id}} {{.Size}}' "$image"
