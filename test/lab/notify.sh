#!/usr/bin/env bash
# shellcheck disable=SC2119  # helpers with optional args
# lab_notify: what systemd would hear from the daemons, through a
# NOTIFY_SOCKET listener of our own (no systemd here) and WATCHDOG_USEC=2 s:
#  - the server says READY=1 with a STATUS= once it listens; the client only
#    once its session is up, with a STATUS= naming its links, kept current
#    (a link's state shows once its probes are answered);
#  - both send WATCHDOG=1 about every second;
#  - SIGHUP brings RELOADING=1 then READY=1, also for a config that is refused;
#  - the client's data-plane worker thread, stopped with ptrace (the rest of
#    the process runs on), gets no WATCHDOG=1 sent for it: the pings stop
#    within a second and come back once it runs again;
#  - SIGTERM brings STOPPING=1.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
lab_test_init notify

fails=()
# The listener: one line per message, "<seconds since the epoch> <who> <fields separated by |>".
"$LAB_PY" - "$LAB_DIR" >"$LAB_DIR/notify.log" 2>&1 <<'PY' &
import os, select, socket, sys, time
d = sys.argv[1]
socks = {}
for who in ("server", "client"):
    p = os.path.join(d, "notify-%s.sock" % who)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(p)
    socks[s] = who
open(os.path.join(d, "notify.ready"), "w").close()
end = time.time() + 120
while time.time() < end:
    r, _, _ = select.select(list(socks), [], [], 0.5)
    for s in r:
        m = s.recv(4096).decode(errors="replace").strip().replace("\n", "|")
        print("%.3f %s %s" % (time.time(), socks[s], m), flush=True)
PY
listener=$!
trap 'kill $listener 2>/dev/null; lab_cleanup' EXIT
for _ in $(seq 50); do [ -e "$LAB_DIR/notify.ready" ] && break; sleep 0.1; done
[ -e "$LAB_DIR/notify.ready" ] || lab_fail "the NOTIFY_SOCKET listener did not start"

export WATCHDOG_USEC=2000000
NOTIFY_SOCKET=$LAB_DIR/notify-server.sock; export NOTIFY_SOCKET
start_server
sleep 0.5
NOTIFY_SOCKET=$LAB_DIR/notify-client.sock; export NOTIFY_SOCKET
start_client
unset NOTIFY_SOCKET WATCHDOG_USEC
wait_tunnel client 20 || lab_fail "tunnel did not come up"
sleep 2.5

msgs() { grep " $1 " "$LAB_DIR/notify.log" | cut -d' ' -f3-; }
count() { grep -c " $1 .*$2" "$LAB_DIR/notify.log" || true; }
first_line() { grep -n " $1 .*$2" "$LAB_DIR/notify.log" | head -n 1 | cut -d: -f1; }

echo "server said: $(msgs server | head -n 3 | tr '\n' ' ')"
echo "client said: $(msgs client | head -n 3 | tr '\n' ' ')"
[ "$(count server 'READY=1|STATUS=listening on ')" -ge 1 ] || fails+=("server: no READY=1 with its STATUS")
ready=$(msgs client | grep -m1 'READY=1' || true)
case "$ready" in
  *"STATUS=connected to "*"links: wan"*) ;;
  *) fails+=("client: READY=1 without a STATUS naming the server and its links: '$ready'") ;;
esac
# Link states are unknown until the first probe echo; STATUS follows within a second.
msgs client | grep -q 'STATUS=connected to .*wan[01] up' || fails+=("client: no STATUS with a link up")
for who in server client; do
  n=$(count "$who" 'WATCHDOG=1')
  echo "measured: $who sent $n WATCHDOG=1 in its first ~3 s"
  [ "$n" -ge 2 ] || fails+=("$who: $n WATCHDOG=1 in ~3 s (want one a second)")
done

# Reload: a good config, then a broken one (refused, READY=1 all the same).
before=$(wc -l <"$LAB_DIR/notify.log")
kill -HUP "$(daemon_pid client)"
sleep 0.5
cp "$LAB_DIR/client.conf" "$LAB_DIR/client.conf.good"
printf 'mode = sideways\n' >>"$LAB_DIR/client.conf"
kill -HUP "$(daemon_pid client)"
sleep 0.5
cp "$LAB_DIR/client.conf.good" "$LAB_DIR/client.conf"
seq_after=$(tail -n +"$((before + 1))" "$LAB_DIR/notify.log" | grep ' client ' | grep -oE 'RELOADING=1|READY=1' | tr '\n' ' ')
echo "measured: client around two reloads: $seq_after"
[ "$seq_after" = "RELOADING=1 READY=1 RELOADING=1 READY=1 " ] ||
  fails+=("client: around two SIGHUPs said '$seq_after', want RELOADING=1 READY=1 twice")
daemon_alive client || lab_fail "client died on a refused reload"

# Freeze the client's data-plane worker for 4 s.
pid=$(daemon_pid client)
tid=""
for t in /proc/"$pid"/task/*; do
  [ "$(cat "$t/comm" 2>/dev/null)" = onebox-dp ] && tid=${t##*/}
done
[ -n "$tid" ] || lab_fail "no thread named onebox-dp in the client (pid $pid)"
freeze_at=$(date +%s.%N)
"$LAB_PY" - "$tid" 4 <<'PY' || fails+=("could not stop the worker thread with ptrace")
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4206, 0x4207
tid = int(sys.argv[1])
if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0 or libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
    sys.exit("ptrace: errno %d" % ctypes.get_errno())
time.sleep(float(sys.argv[2]))  # leaving detaches: the thread runs again
PY
thaw_at=$(date +%s.%N)
sleep 2.5
pings_during=$(awk -v a="$freeze_at" -v b="$thaw_at" '$2 == "client" && $3 ~ /WATCHDOG=1/ && $1 > a + 1.1 && $1 < b' "$LAB_DIR/notify.log" | wc -l)
pings_after=$(awk -v b="$thaw_at" '$2 == "client" && $3 ~ /WATCHDOG=1/ && $1 > b' "$LAB_DIR/notify.log" | wc -l)
server_during=$(awk -v a="$freeze_at" -v b="$thaw_at" '$2 == "server" && $3 ~ /WATCHDOG=1/ && $1 > a && $1 < b' "$LAB_DIR/notify.log" | wc -l)
echo "measured: worker stopped 4 s: client WATCHDOG=1 from 1.1 s into it: $pings_during, in the 2.5 s after: $pings_after; server meanwhile: $server_during"
[ "$pings_during" -eq 0 ] || fails+=("client sent $pings_during WATCHDOG=1 while its worker was stopped")
[ "$pings_after" -ge 1 ] || fails+=("client sent no WATCHDOG=1 after its worker ran again")
[ "$server_during" -ge 2 ] || fails+=("server sent $server_during WATCHDOG=1 while the client's worker was stopped")
grep -q "watchdog ping withheld" "$(lab_log_file client)" || fails+=("client did not log the withheld ping")

stop_client
stop_server
sleep 0.3
for who in client server; do
  [ "$(count "$who" 'STOPPING=1')" -ge 1 ] || fails+=("$who: no STOPPING=1 on SIGTERM")
done

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}"
  exit 1
fi
echo "PASS: READY/STATUS/WATCHDOG/RELOADING/STOPPING as systemd expects; a stopped worker stops the watchdog pings"
