#!/usr/bin/env bash
# Make sure a Docker engine runs here (the code_interpreter sandbox and the compose tests need
# one): install Debian's docker.io, docker-compose (1.29) and debootstrap (to make base images
# without a registry) when missing, and start dockerd when it is not answering. A failure
# here fails CI.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 \
    || ! command -v docker-compose >/dev/null 2>&1; then
  echo "installing docker.io, docker-compose and debootstrap from Debian"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    docker.io docker-compose debootstrap >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd"
  # No default bridge: it would hand out private-range addresses. Sandboxes use no network.
  $SUDO sh -c 'nohup dockerd --bridge=none --iptables=false >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
fi
docker info --format 'docker engine {{.ServerVersion}} ({{.CgroupVersion}}, {{.Driver}})'
