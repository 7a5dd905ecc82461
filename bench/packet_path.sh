#!/usr/bin/env bash
# bench/packet_path.sh — the per-packet cost of onebox's own code on a
# 1400-byte packet (frame + seal + schedule, and open + replay + reorder)
# beside libsodium's bare ChaCha20-Poly1305 on the same buffers, measured in
# the same run by build/bench_packet_path (bench/packet_path.cpp); with
# valgrind (callgrind) also the instructions per packet, which do not depend
# on what else the machine does. Target (issue #7): the packet path at most
# 1.3x the bare AEAD. Writes the section between <!-- packet-path:begin -->
# and <!-- packet-path:end --> in bench/results.md (BENCH_RESULTS elsewhere).
# Env: ONEBOX_BUILD (build/), BENCH_PACKETS (2000000).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../ci/lab.sh
source "$HERE/../ci/lab.sh"
CMDLINE="bash bench/packet_path.sh"
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
