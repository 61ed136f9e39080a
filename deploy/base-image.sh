#!/usr/bin/env bash
# The Debian base of deploybot's images (no image can be pulled here): a bookworm root
# filesystem made with debootstrap (minbase, plus Python, git, tini and PostgreSQL) and
# `docker import`ed as deploybot/debian:bookworm. Idempotent: does nothing when the image
# exists; the root filesystem's tarball is cached in the state directory.
set -euo pipefail
IMAGE=${DEPLOYBOT_DEBIAN_IMAGE:-deploybot/debian:bookworm}
STATE=${DEPLOYBOT_STATE_DIR:-/var/lib/deploybot-dev}
MIRROR=${DEPLOYBOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKER=/usr/bin/docker
PACKAGES=python3,python3-venv,git,ca-certificates,tini,postgresql-15
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if $DOCKER image inspect "$IMAGE" >/dev/null 2>&1; then exit 0; fi
TARBALL="$STATE/debian-bookworm-rootfs.tar"
if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  ROOTFS=$(mktemp -d)
  trap 'as_root rm -rf "$ROOTFS"' EXIT
  echo "[base-image] debootstrap bookworm into $ROOTFS" >&2
  as_root debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" "$MIRROR" >"$STATE/debootstrap.log" 2>&1
  as_root rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  as_root tar -C "$ROOTFS" -cf "$TARBALL.part" .
  mv "$TARBALL.part" "$TARBALL"
fi
$DOCKER import --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' "$TARBALL" "$IMAGE" >/dev/null
echo "[base-image] $IMAGE ready" >&2
