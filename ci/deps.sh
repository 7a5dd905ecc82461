#!/usr/bin/env bash
# ci/deps.sh — install every build and test dependency of onebox (Debian 12).
# Idempotent: when every package is already installed it does not touch apt.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config g++ clang
  liburing-dev libsodium-dev libsystemd-dev libinih-dev doctest-dev
  libmnl-dev libnftables-dev
  # runtime of the daemons
  nftables iproute2
  # lab / integration tests / benchmark / demo
  iperf3 curl python3 procps psmisc iputils-ping coreutils util-linux
  # units_verify (systemd-analyze); lab dbus and caps (a private dbus-daemon, busctl)
  systemd dbus-daemon
  # packaging: man_lint (groff, man), ci/package.sh (cpack's dpkg-shlibdeps
  # comes with build-essential's dpkg-dev; lintian), deb_install (dpkg, unshare)
  groff-base man-db lintian
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "deps: done"
