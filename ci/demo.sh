#!/usr/bin/env bash
# ci/demo.sh — the README's "demo" command: install deps, build, bring up the
# namespace lab, start server and client, then run the demo steps of ci/lab.sh
# (DEMO_STEPS: 100 MB HTTP download with speed, iperf3 5 s both ways, SIGUSR1
# stats of both daemons) and tear everything down. Needs root.
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
