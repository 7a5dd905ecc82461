#!/usr/bin/env bash
# lab_journal: what journald would get from the daemons. No journald runs
# here, so the test plays journald's part: each daemon starts through a
# wrapper that, inside the private mount namespace `ip netns exec` gives it,
# mounts a tmpfs on /run/systemd, binds a listener of ours at
# /run/systemd/journal/socket (decoding the native protocol) and sets
# JOURNAL_STREAM to the device:inode of the daemon's stderr, as systemd does.
# Checked, for each event kind on the way (started, link added, connected,
# link up, link down, link stalled, auth failed, config reloaded and refused,
# stopped): a record with MESSAGE_ID (one per kind, as log.cpp defines
# them), ONEBOX_EVENT, ONEBOX_LINK / ONEBOX_CLIENT / ONEBOX_ADDRESS where they
# belong, PRIORITY and SYSLOG_IDENTIFIER; plain lines (the stats) get there
# too; and nothing goes to stderr meanwhile.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
LAB_TEST=journal
lab_require_emu "$LAB_TEST"
lab_test_init "$LAB_TEST"
fails=()

# journald's native protocol (sd_journal_sendv): one datagram per entry,
# fields "KEY=VALUE\n", or "KEY\n" + 64-bit LE size + data + "\n" when the
# value holds a newline; a big entry comes as a memfd. Exits with the daemon.
cat >"$LAB_DIR/journal-listen.py" <<'PY'
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
out = open(sys.argv[1], "a")
parent = os.getppid()
s.settimeout(0.5)
while os.getppid() == parent:
    try:
        data, anc, flags, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 4))
    except socket.timeout:
        continue
    for level, kind, fdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fd = struct.unpack("i", fdata[:4])[0]
            data = os.pread(fd, 1 << 22, 0)
            os.close(fd)
    rec, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            n = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        rec[k.decode()] = v.decode(errors="replace")
    out.write(json.dumps(rec) + "\n")
    out.flush()
PY
# journal-wrap.sh REAL_BIN ARGS...: runs inside the daemon's `ip netns exec`,
# whose mounts the host never sees.
cat >"$LAB_DIR/journal-wrap.sh" <<EOF
#!/usr/bin/env bash
bin=\$1; shift
[ -d /run/systemd ] || mkdir -p /run/systemd
mount -t tmpfs -o mode=755 tmpfs /run/systemd || exit 1
mkdir -p /run/systemd/journal
"$LAB_PY" "$LAB_DIR/journal-listen.py" "$LAB_DIR/journal.jsonl" &
for _ in \$(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
JOURNAL_STREAM=\$(stat -L -c '%d:%i' /proc/self/fd/2) exec "\$bin" "\$@"
EOF
chmod +x "$LAB_DIR/journal-wrap.sh"
for who in server client; do
  bin=$ONEBOX_SERVER_BIN; [ "$who" = client ] && bin=$ONEBOX_CLIENT_BIN
  printf '#!/bin/sh\nexec %s %s "$@"\n' "$LAB_DIR/journal-wrap.sh" "$bin" >"$LAB_DIR/$who-j"
  chmod +x "$LAB_DIR/$who-j"
done

# wan1 the nearer link, so the ping flood rides it when it is cut
lab_emu_set wan0 "set both rate=40mbit delay=30ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
ONEBOX_SERVER_BIN=$LAB_DIR/server-j start_server
sleep 0.5
ONEBOX_CLIENT_BIN=$LAB_DIR/client-j start_client
# Its stderr stays empty under journald: wait for the record instead.
for _ in $(seq 100); do
  grep -s '"SYSLOG_IDENTIFIER": "onebox-client"' "$LAB_DIR/journal.jsonl" | grep -q '"ONEBOX_EVENT": "connected"' && break
  sleep 0.2
done
lab_ping cli 10.0.0.1 10 || lab_fail "tunnel did not come up"
sleep 1.5
# auth failed: a handshake under another key
lab_exec cli "$ONEBOX_BUILD/hs_probe" 192.0.2.2 8080 not-the-key 0badc0de 10.0.0.9 >/dev/null 2>&1
# link down and stalled: wan1 cut under a ping flood
lab_exec cli ping -n -q -i 0.01 -c 400 "$LAB_INET_IP" >/dev/null 2>&1 &
ping_pid=$!
sleep 1
lab_emu_set wan1 "set both cut=1" >/dev/null
sleep 2.5
lab_emu_set wan1 "set both cut=0" >/dev/null
wait "$ping_pid"
# config reloaded, then refused
kill -HUP "$(daemon_pid client)"
sleep 0.5
sed -i 's/^\[client\]$/[client]\nmode = "fastest"/' "$LAB_DIR/client.conf"
kill -HUP "$(daemon_pid client)"
sleep 0.5
kill -USR1 "$(daemon_pid client)"
sleep 0.5
stop_client
stop_server
sleep 0.5

n=$(wc -l <"$LAB_DIR/journal.jsonl")
echo "journal records received: $n"
verdict=$("$LAB_PY" - "$LAB_DIR/journal.jsonl" "$LAB_REPO/README.md" <<'PY'
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
# The ids as the README's table publishes them: they are fixed for good, so
# the daemon must send exactly those.
ids = dict(re.findall(r'^\| `([a-z-]+)` \| `([0-9a-f]{32})` \|', open(sys.argv[2]).read(), re.M))
if len(ids) < 14: fails_early = ["the README's MESSAGE_ID table has %d rows, not 14" % len(ids)]
else: fails_early = []
fails = list(fails_early)
def find(who, event, **fields):
    for r in recs:
        if r.get("SYSLOG_IDENTIFIER") != who or r.get("ONEBOX_EVENT") != event: continue
        if all(r.get(k) == v if v is not True else k in r for k, v in fields.items()): return r
    return None
want = [
    ("onebox-server", "started", {}),
    ("onebox-server", "connected", {"ONEBOX_CLIENT": True, "ONEBOX_ADDRESS": True}),
    ("onebox-server", "auth-failed", {"ONEBOX_ADDRESS": True}),
    ("onebox-server", "link-up", {"ONEBOX_CLIENT": True, "ONEBOX_LINK": True}),
    ("onebox-server", "stopped", {}),
    ("onebox-client", "started", {}),
    ("onebox-client", "link-added", {"ONEBOX_LINK": "wan0"}),
    ("onebox-client", "link-added", {"ONEBOX_LINK": "wan1"}),
    ("onebox-client", "connected", {"ONEBOX_CLIENT": True, "ONEBOX_ADDRESS": "192.0.2.2:8080"}),
    ("onebox-client", "link-up", {"ONEBOX_LINK": "wan1"}),
    ("onebox-client", "link-down", {"ONEBOX_LINK": "wan1", "PRIORITY": "4"}),
    ("onebox-client", "link-stalled", {"ONEBOX_LINK": "wan1"}),
    ("onebox-client", "config-reloaded", {"PRIORITY": "6"}),
    ("onebox-client", "config-refused", {"PRIORITY": "3"}),
    ("onebox-client", "stopped", {}),
]
for who, event, fields in want:
    r = find(who, event, **fields)
    if not r:
        fails.append("%s: no %s record with %s" % (who, event, fields)); continue
    if r.get("MESSAGE_ID") != ids.get(event):
        fails.append("%s %s: MESSAGE_ID %s, the README says %s" % (who, event, r.get("MESSAGE_ID"), ids.get(event)))
    if not r.get("MESSAGE") or "PRIORITY" not in r:
        fails.append("%s %s: no MESSAGE or PRIORITY" % (who, event))
    print("  %-14s %-16s %s %s" % (who, event, r.get("MESSAGE_ID"), r.get("MESSAGE")[:90]))
if len(set(ids.values())) != len(ids): fails.append("MESSAGE_IDs in the README are not unique")
stats = [r for r in recs if r.get("MESSAGE", "").startswith("stats: ")]
if not stats: fails.append("the stats line (a plain line, no event) did not reach the journal")
elif "ONEBOX_EVENT" in stats[0]: fails.append("the stats line carries ONEBOX_EVENT")
print("FAILS:" + "|".join(fails) if fails else "OK")
PY
)
printf '%s\n' "$verdict" | grep -v '^FAILS:\|^OK$'
case "$verdict" in *FAILS:*) IFS='|' read -r -a more <<<"${verdict##*FAILS:}"; fails+=("${more[@]}") ;; esac
# The stderr of a daemon under journald carries nothing: it all went to the socket.
for who in client server; do
  extra=$(grep -v '^### lab: ' "$(lab_log_file "$who")" | head -n 3)
  [ -z "$extra" ] || fails+=("the $who also wrote to stderr: $extra")
done

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}"
  exit 1
fi
echo "PASS: journald gets every event with its MESSAGE_ID and fields"
