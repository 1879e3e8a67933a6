#!/usr/bin/env bash
# Install what building, running and testing kvfs needs on Debian 12.
# Idempotent: packages already present are left alone.
set -euo pipefail
pkgs=(
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  liblmdb-dev lmdb-utils libjansson-dev libfuse3-dev fuse3
  attr libsodium-dev libsqlite3-dev sqlite3 libmicrohttpd-dev libsystemd-dev
  libzstd-dev
  curl jq wrk
  scdoc bash-completion man-db groff-base bsdextrautils
  systemd # systemd-analyze: the shipped units are verified offline
  rsync iproute2 util-linux procps psmisc coreutils findutils python3
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing: ${missing[*]}" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi
