#!/usr/bin/env bash
# ci/demo.sh — the README's "demo" command: install deps, build, bring up the
# namespace lab with two emulated WAN links (40 and 20 Mbit/s, 10 ms; each
# measured alone first), start server and client, then run the demo steps of
# ci/lab.sh (DEMO_STEPS: 50 MB HTTP download, iperf3 5 s both ways with 1 and 4
# streams, each with the bond's speed and each link's share; SIGUSR1 stats of
# both daemons) and tear everything down. Needs root.
# DEMO_EMU=0: the plain veth lab instead (no rate limits; 100 MB download).
# DEMO_LINKS="50@10 20@40": other emulated links (Mbit/s @ one-way ms).
# To extend: define a function demo_<thing> here and append it to DEMO_STEPS.
# Env: SKIP_DEPS=1, SKIP_BUILD=1, ONEBOX_BUILD (default build/).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "${SKIP_DEPS:-0}" = 1 ] || bash ci/deps.sh || exit 1
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build || exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lab.sh
source ci/lab.sh
lab_demo
