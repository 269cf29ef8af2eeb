#!/usr/bin/env bash
# Installs the Debian packages atp builds against (idempotent: installs only what is missing).
set -euo pipefail
PKGS=(libavformat-dev libavcodec-dev libswscale-dev libavdevice-dev libopenblas-dev pkg-config ffmpeg rtsp-server-perl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present (${PKGS[*]})" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
