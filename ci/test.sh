#!/usr/bin/env bash
# ci/test.sh — the README's "test" command.
#   0. installs build and test dependencies (ci/deps.sh; fast when all are there);
#   1. configure + build build/ (Ninja, RelWithDebInfo) and run its CTest suite:
#      unit tests, fuzz corpus replays, lab (network namespace) tests;
#   2. a clang libFuzzer build in build-fuzz/ and its fuzz_* tests
#      (ONEBOX_FUZZ_SECONDS each);
#   3. sanitizers: build-asan/ (ASan+UBSan) with the unit tests, fuzz corpus
#      replays and every lab test; build-tsan/ (TSan) with the unit tests and
#      the lab tests that drive the data plane; any sanitizer report fails;
#   4. the Debian package: ci/package.sh (build-deb/, Debian's flags, cpack,
#      lintian without errors or warnings), counted as one check;
#   5. the aarch64 cross build: ci/cross.sh (arm64 toolchain and -dev packages,
#      build-arm64/ and its .deb), then its unit tests and fuzz corpus
#      replays under qemu-aarch64 through CTest.
# Prints "N passed, N failed" over all of them; exits non-zero on any failure.
# Env: ONEBOX_FUZZ_SECONDS (20), CTEST_JOBS (nproc), SKIP_FUZZ=1 to skip step 2,
#      SKIP_SANITIZE=1 step 3, SKIP_PACKAGE=1 step 4, SKIP_CROSS=1 step 5,
#      SKIP_DEPS=1 step 0.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "${SKIP_DEPS:-0}" = 1 ] || bash ci/deps.sh || exit 1

FUZZ_SECONDS=${ONEBOX_FUZZ_SECONDS:-20}
JOBS=${CTEST_JOBS:-$(nproc)}
PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()

# run_ctest LABEL BUILD_DIR [ctest args...]: runs ctest, adds its counts to the totals.
run_ctest() {
  local label=$1 dir=$2 log total nfail nskip
  shift 2
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "$@" 2>&1 | tee "$log"
  if grep -q 'No tests were found' "$log"; then
    echo "[$label] no tests found"
    rm -f "$log"
    return 0
  fi
  read -r nfail total < <(sed -nE 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1 \2/p' "$log" | tail -n 1)
  if [ -z "${total:-}" ]; then
    echo "[$label] could not parse the ctest summary; counting it as a failure"
    FAILED=$((FAILED + 1)); FAILURES+=("$label: ctest did not run")
    rm -f "$log"
    return 1
  fi
  # a skipped test appears twice (its line and the "did not run" list): count it once
  nskip=$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "$log")
  PASSED=$((PASSED + total - nfail - nskip))
  FAILED=$((FAILED + nfail))
  SKIPPED=$((SKIPPED + nskip))
  while IFS= read -r l; do FAILURES+=("$label: $l"); done < <(sed -n '/The following tests FAILED:/,$p' "$log" | grep -E '^[[:space:]]+[0-9]+ - ' | sed 's/^[[:space:]]*//')
  rm -f "$log"
}

build_failed() { echo "BUILD FAILED: $1"; FAILED=$((FAILED + 1)); FAILURES+=("build: $1"); }

echo "=== build/ (RelWithDebInfo)"
if cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build; then
  run_ctest main build
else
  build_failed "build/"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  echo "=== build-fuzz/ (clang, libFuzzer, ${FUZZ_SECONDS}s per target)"
  if CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DONEBOX_FUZZ=ON \
      -DONEBOX_FUZZ_SECONDS="$FUZZ_SECONDS"; then
    # Only the fuzz targets are needed here.
    mapfile -t targets < <(ninja -C build-fuzz -t targets all 2>/dev/null | sed -nE 's/^(fuzz_[A-Za-z0-9_]+): .*/\1/p' | sort -u)
    if [ ${#targets[@]} -eq 0 ]; then
      echo "no fuzz targets defined"
    elif cmake --build build-fuzz --target "${targets[@]}"; then
      run_ctest fuzz build-fuzz -R '^fuzz_'
    else
      build_failed "build-fuzz/"
    fi
  else
    build_failed "build-fuzz/ configure"
  fi
fi

# sanitized LABEL DIR CMAKE_OPTION [ctest args...]: builds DIR with the
# sanitizer option and runs its CTest suite (the lab tests start DIR's
# daemons) with every sanitizer report written to a fresh directory; each
# report counts as a failure, whatever the test made of it.
sanitized() {
  local label=$1 dir=$2 opt=$3 reports f
  shift 3
  echo "=== $dir/ ($label)"
  if ! { cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$opt" && cmake --build "$dir"; }; then
    build_failed "$dir/"
    return
  fi
  reports=$(mktemp -d /tmp/onebox-sanitizer.XXXXXX)
  chmod 1777 "$reports"  # some tests run the tools as nobody
  export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1"
  export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
  export TSAN_OPTIONS="log_path=$reports/tsan:second_deadlock_stack=1"
  run_ctest "$label" "$dir" "$@"
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
  for f in "$reports"/*; do
    [ -e "$f" ] || continue
    echo "--- sanitizer report $f:"
    head -n 40 "$f"
    FAILED=$((FAILED + 1)); FAILURES+=("$label: sanitizer report $(basename "$f")")
  done
  rm -rf "$reports"
}

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  # ASan+UBSan: the unit tests, fuzz corpus replays and every lab test.
  sanitized asan build-asan -DONEBOX_SANITIZE=ON -E '^(bench_|units_verify|man_lint|deb_install|meta_onebox)'
  # TSan: the lab tests that run the data plane hardest beside the control
  # thread (traffic both ways, several clients and workers, link failures,
  # restarts, D-Bus reads of live counters).
  sanitized tsan build-tsan -DONEBOX_TSAN=ON \
    -R '^(unit|lab_(iperf|two_clients|workers|failover|multilink|offloads|server_restart|client_restart|dbus|notify))$'
fi

if [ "${SKIP_PACKAGE:-0}" != 1 ]; then
  echo "=== build-deb/ (Debian package: ci/package.sh, lintian)"
  if bash ci/package.sh; then
    PASSED=$((PASSED + 1))
  else
    FAILED=$((FAILED + 1)); FAILURES+=("package: ci/package.sh (the .deb or lintian)")
  fi
fi

if [ "${SKIP_CROSS:-0}" != 1 ]; then
  echo "=== build-arm64/ (aarch64 cross build, .deb; unit tests under qemu-user)"
  if bash ci/cross.sh deps && bash ci/cross.sh build; then
    read -ra cross_args < <(bash ci/cross.sh ctest-args)
    run_ctest arm64 build-arm64 "${cross_args[@]}"
  else
    build_failed "build-arm64/ (ci/cross.sh)"
  fi
fi

echo
if [ ${#FAILURES[@]} -gt 0 ]; then
  echo "Failures:"
  printf '  %s\n' "${FAILURES[@]}"
fi
[ "$SKIPPED" -gt 0 ] && echo "($SKIPPED skipped)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
