#!/usr/bin/env bash
# Make a small local base image for the server and Postgres images without any container
# registry: a minimal Debian rootfs with Python 3.11, imported into Docker.
#
#   deploy/make-base.sh [IMAGE]        (default IMAGE: assistd-base:bookworm)
#   ASSISTD_BASE=assistd-base:bookworm docker-compose -f docker-compose.yml -f docker-compose.local.yml up -d
#
# The compose override builds from assistd-sandbox-base:bookworm by default (made anyway for
# the sandbox, with the scientific stack: ~1.25 GB); this one has only Python and is much
# smaller. It is sandbox-image/make-base.sh with another package list (root, debootstrap and
# a few minutes; the Debian mirror is the one apt uses, SANDBOX_MIRROR overrides it).
# python3-venv brings ensurepip (pip in new virtualenvs); tzdata and ca-certificates for TLS
# to model backends and correct time zones.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PACKAGES="python3 python3-venv ca-certificates tzdata" \
  exec bash sandbox-image/make-base.sh "${1:-assistd-base:bookworm}"
