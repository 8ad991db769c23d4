#!/usr/bin/env bash
# Installs the Debian 12 packages paygate needs to build, test and demo,
# skipping the ones already present. Runs as root, or through sudo.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config clang libclang-rt-14-dev
  libfcgi-dev spawn-fcgi
  libmariadb-dev mariadb-server mariadb-client
  libssl-dev openssl libxml2-dev libcurl4-openssl-dev libjansson-dev
  libinih-dev libqrencode-dev libcmocka-dev libzip-dev zlib1g-dev zip
  lighttpd apache2 libapache2-mod-fcgid
  python3 python3-pytest python3-requests python3-pymysql python3-cryptography
  wrk ca-certificates chromium chromium-driver prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm (the sandbox's interop test uses the official SDK from npm):
# the machine may carry them from another source, so only ask Debian for them
# when the commands are absent.
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "deps: installing ${missing[*]}"
# Keep the packages' own services (mariadb, apache2, lighttpd) from starting:
# paygate runs private instances of each under the project folder.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
