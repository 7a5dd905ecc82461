#!/usr/bin/env bash
# bench/packet_path.sh — the per-packet cost of onebox's own code on a
# 1400-byte packet (frame + seal + schedule, and open + replay + reorder)
# beside libsodium's bare ChaCha20-Poly1305 on the same buffers, measured in
# the same run by build/bench_packet_path (bench/packet_path.cpp); with
# valgrind (callgrind) also the instructions per packet, which do not depend
# on what else the machine does. Target (issue #7): the packet path at most
# 1.3x the bare AEAD. Writes the section between <!-- packet-path:begin -->
# and <!-- packet-path:end --> in bench/results.md (BENCH_RESULTS elsewhere).
# With an aarch64 build (ci/cross.sh build: build-arm64/) and qemu-user,
# also the aarch64 instructions per packet: qemu-aarch64 -singlestep logs
# every instruction it executes (Debian's qemu-user has no TCG plugins), and
# each loop run alone (bench_packet_path ... ONLY) for 1024 and 2048
# packets gives, by difference, the cost of 1024 packets without the set-up.
# Env: ONEBOX_BUILD (build/), BENCH_PACKETS (2000000), BENCH_ARM64_BIN
# (build-arm64/bench_packet_path).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
CMDLINE="bash bench/packet_path.sh"
[ -n "${BENCH_ARM64_BIN:-}" ] && CMDLINE="BENCH_ARM64_BIN=$BENCH_ARM64_BIN $CMDLINE"
RESULTS=${BENCH_RESULTS:-$HERE/results.md}
BIN=$ONEBOX_BUILD/bench_packet_path
[ -x "$BIN" ] || lab_fail "$BIN not built (cmake --build build --target bench_packet_path)"
PACKETS=${BENCH_PACKETS:-2000000}

out=$("$BIN" "$PACKETS") || lab_fail "bench_packet_path failed: $out"
printf '%s\n' "$out"
small=$("$BIN" "$PACKETS" 64) || lab_fail "bench_packet_path 64 failed: $small"
printf '%s\n' "$small"

# Instructions per packet under callgrind: the whole program (10240 packets)
# minus the same program doing nothing but its set-up, split by function.
instr=""
if command -v valgrind >/dev/null; then
  cg=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$cg/cg.out" "$BIN" 10240 >/dev/null 2>"$cg/err" &&
    instr=$(callgrind_annotate --inclusive=yes "$cg/cg.out" 2>/dev/null | "$LAB_PY" -c '
import re, sys
want = {"send_batch": "send", "receive_batch": "receive", "seal_batch": "bare seal", "open_batch": "bare open"}
got = {}
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) .*?\b(\w+)::(send_batch|receive_batch|seal_batch|open_batch)\(", line)
    if m and want[m.group(3)] not in got: got[want[m.group(3)]] = int(m.group(1).replace(",", "")) / 10240
if len(got) == 4:
    print("instructions per packet (callgrind, 10240 packets): send %.0f, bare seal %.0f (%.3fx); receive %.0f, bare open %.0f (%.3fx)" % (
        got["send"], got["bare seal"], got["send"] / got["bare seal"], got["receive"], got["bare open"], got["receive"] / got["bare open"]))
')
  rm -rf "$cg"
fi
[ -n "$instr" ] && echo "$instr"

# aarch64 instructions per packet under qemu-user (see the top).
ARM_BIN=${BENCH_ARM64_BIN:-$HERE/../build-arm64/bench_packet_path}
arm_count() { # ONLY PACKETS -> instructions executed (the whole program)
  qemu-aarch64 -L /usr/aarch64-linux-gnu -singlestep -d exec,nochain -D /dev/stdout \
    "$ARM_BIN" "$2" 1400 "$1" | grep -c '^Trace'
}
arm=""
if [ -x "$ARM_BIN" ] && command -v qemu-aarch64 >/dev/null; then
  declare -A per
  for m in seal open send receive; do
    a=$(arm_count "$m" 1024) && b=$(arm_count "$m" 2048) || { per=(); break; }
    per[$m]=$(( (b - a) / 1024 ))
  done
  if [ "${#per[@]}" -eq 4 ]; then
    # open and receive ran after a seal / send of the same packets.
    o=$(( per[open] - per[seal] )); r=$(( per[receive] - per[send] ))
    arm=$(awk -v s="${per[send]}" -v b="${per[seal]}" -v r="$r" -v o="$o" 'BEGIN {
      printf "aarch64 instructions per packet (qemu-aarch64 -singlestep, 1400 bytes): send %d, bare seal %d (%.3fx); receive %d, bare open %d (%.3fx); bare seal %.1f instructions/byte", s, b, s / b, r, o, r / o, b / 1400 }')
    echo "$arm"
  else
    echo "aarch64 instruction counts failed"
  fi
else
  echo "aarch64 instruction counts skipped: no $ARM_BIN or no qemu-aarch64 (bash ci/cross.sh deps build)"
fi

SECTION=$(mktemp)
{
  echo "<!-- packet-path:begin -->"
  echo "### Packet path vs bare AEAD (issue #7)"
  echo
  lab_bench_header "$CMDLINE"
  echo "- what: the calls the worker makes per packet (bench/packet_path.cpp says which), on a fake"
  echo "  clock, without the io_uring submission and syscalls; beside libsodium's"
  echo "  crypto_aead_chacha20poly1305_ietf on the same buffers, interleaved in one run"
  echo
  echo '```'
  printf '%s\n' "$out"
  echo
  printf '%s\n' "$small"
  [ -n "$instr" ] && { echo; echo "$instr"; }
  [ -n "$arm" ] && echo "$arm"
  echo '```'
  echo
  read -r _ _ s _ r _ < <(grep "^result:" <<<"$out")
  echo "Target: the packet path at most 1.3x the bare AEAD: send ${s}x, receive ${r}x:" \
    "$(awk -v s="$s" -v r="$r" 'BEGIN { print (s <= 1.3 && r <= 1.3) ? "met" : "**missed**" }')."
  echo "<!-- packet-path:end -->"
} >"$SECTION"
lab_write_section "$RESULTS" packet-path "$SECTION"
rm -f "$SECTION"
echo "== wrote $RESULTS"
