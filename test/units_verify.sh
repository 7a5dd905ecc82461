#!/usr/bin/env bash
# units_verify: `systemd-analyze verify` on units/*.service, with ExecStart
# pointed at the binaries just built (verify checks that they exist) and the
# man pages of units/man for Documentation= (verify runs man on them). Any
# output fails the test: verify reports unknown keys and bad values as
# warnings and still exits 0.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ONEBOX_BUILD:-$HERE/build}
command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze not installed"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
units=()
for u in "$HERE"/units/*.service; do
  name=$(basename "$u")
  sed -e "s|/usr/sbin/onebox-client|$BUILD/onebox-client|" -e "s|/usr/sbin/onebox-server|$BUILD/onebox-server|" "$u" >"$work/$name"
  units+=("$work/$name")
done
# verify runs `man` on each Documentation= page: let it find units/man/*.
for page in "$HERE"/units/man/*.[1-9]; do
  mkdir -p "$work/man/man${page##*.}"
  ln -s "$page" "$work/man/man${page##*.}/"
done
out=$(MANPATH="$work/man" systemd-analyze verify "${units[@]}" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify (exit $rc):"
  printf '%s\n' "$out"
  exit 1
fi
echo "PASS: systemd-analyze verify is clean on ${#units[@]} units"
