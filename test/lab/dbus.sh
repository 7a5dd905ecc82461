#!/usr/bin/env bash
# lab_dbus: onebox on D-Bus, against a private dbus-daemon running Debian's
# system bus policy with control/org.onebox.conf (lab_dbus_start), both WANs
# through linkemu:
#  - both daemons take their names; the introspection of every object matches
#    control/org.onebox.{Client1,Server1}.xml, and every property listed
#    there reads (GetAll) on every object;
#  - `status` prints the links and totals as a table, and JSON, and again
#    every second with --watch; a user other than root may read (status,
#    Get) but not call SetMode (policy);
#  - cutting wan1 shows in PropertiesChanged (its State goes "down"); no
#    object is announced more than 3 times in any second of the whole run
#    (coalescing), and counters changing under a ping flood are not announced;
#  - the methods: SetMode (the server's client object follows; a bad mode is
#    refused), SetEnabled(false/true) on wan1 (the last link is refused),
#    Reload (a good one; a broken config refused with its error, the old
#    mode stays; also via `onebox-client reload`), Disconnect on the server's
#    client object (the client connects again);
#  - a link whose interface goes away is announced with InterfacesRemoved,
#    and InterfacesAdded when it is back; Disconnect's client object goes
#    and a new one comes when the client connects again;
#  - dbus-daemon restarted: both daemons are back on it within 8 s;
#  - `onebox-client stop` goes through D-Bus and returns once the daemon has
#    restored routes and left the bus; `status` then says it is not running.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../../ci/lab.sh
source "$HERE/../../ci/lab.sh"
LAB_TEST=dbus
lab_require_emu "$LAB_TEST"
lab_test_init "$LAB_TEST"
command -v busctl >/dev/null || lab_fail "busctl not installed"
chmod 755 "$LAB_DIR"  # the bus socket is reached by an unprivileged user below
lab_dbus_start
fails=()
B=(busctl --address="$DBUS_SYSTEM_BUS_ADDRESS")
C=org.onebox.Client1
S=org.onebox.Server1
CLI=(lab_exec cli "$ONEBOX_CLIENT_BIN")
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

lab_emu_set wan0 "set both rate=40mbit delay=10ms" || lab_fail "linkemu wan0"
lab_emu_set wan1 "set both rate=20mbit delay=10ms" || lab_fail "linkemu wan1"
"${B[@]}" monitor --json=short >"$LAB_DIR/monitor.json" 2>"$LAB_DIR/monitor.err" &
LAB_BG_PIDS+=("$!")
lab_tunnel_up || lab_fail "tunnel did not come up"
sleep 1.5  # both links probed

# ---- names, introspection, properties -------------------------------------------
"${B[@]}" list | grep -q "^$C " || fails+=("$C not on the bus")
"${B[@]}" list | grep -q "^$S " || fails+=("$S not on the bus")
PEER=$("${B[@]}" tree --list "$S" | grep '/client/' | head -n 1)
[ -n "$PEER" ] || fails+=("the server shows no client object")
echo "objects: $("${B[@]}" tree --list "$C" | tr '\n' ' ') $("${B[@]}" tree --list "$S" | tr '\n' ' ')"

# check_object SERVICE PATH XML: the live interface equals the XML's, and GetAll
# returns every property the XML lists.
check_object() {
  local live all
  live=$("${B[@]}" introspect --xml-interface "$1" "$2" 2>&1) || { fails+=("introspect $2: $live"); return; }
  all=$("${B[@]}" --json=short call "$1" "$2" org.freedesktop.DBus.Properties GetAll s "$4" 2>&1) ||
    { fails+=("GetAll $2: $all"); return; }
  local verdict
  verdict=$("$LAB_PY" - "$3" "$4" "$live" "$all" <<'PY'
import json, sys, xml.etree.ElementTree as ET
want_file, iface, live, allprops = sys.argv[1:5]
def members(root, name):
    for i in root.iter("interface"):
        if i.get("name") != name: continue
        out = []
        for el in i:
            ann = tuple(sorted((a.get("name"), a.get("value")) for a in el.findall("annotation")))
            args = tuple((a.get("type"), a.get("name")) for a in el.findall("arg"))
            out.append((el.tag, el.get("name"), el.get("type"), el.get("access"), args, ann))
        return sorted(out)
    return None
want = members(ET.parse(want_file).getroot(), iface)
got = members(ET.fromstring(live), iface)
if want is None: print("no interface %s in %s" % (iface, want_file)); sys.exit()
if got != want:
    print("introspection differs from %s: only live %s; only in the file %s" % (
        want_file, sorted(set(got or []) - set(want)), sorted(set(want) - set(got or []))))
    sys.exit()
data = json.loads(allprops)["data"][0]
names = {m[1] for m in want if m[0] == "property"}
missing = sorted(names - set(data))
print("missing in GetAll: %s" % missing if missing else "ok %d properties" % len(names))
PY
)
  case "$verdict" in ok*) echo "$2 ($4): $verdict" ;; *) fails+=("$2: $verdict") ;; esac
}
check_object "$C" /org/onebox/Client1 "$LAB_REPO/control/org.onebox.Client1.xml" "$C"
check_object "$C" /org/onebox/Client1/link/wan0 "$LAB_REPO/control/org.onebox.Client1.xml" "$C.Link"
check_object "$C" /org/onebox/Client1/link/wan1 "$LAB_REPO/control/org.onebox.Client1.xml" "$C.Link"
check_object "$S" /org/onebox/Server1 "$LAB_REPO/control/org.onebox.Server1.xml" "$S"
[ -n "$PEER" ] && check_object "$S" "$PEER" "$LAB_REPO/control/org.onebox.Server1.xml" "$S.Client"

prop() { "${B[@]}" get-property "$1" "$2" "$3" "$4" 2>&1; }

# ---- status, as root and as anyone ------------------------------------------------
lab_exec cli ping -n -q -i 0.01 -c 300 "$LAB_INET_IP" >/dev/null 2>&1 &
ping_pid=$!
sleep 1.5
st=$("${CLI[@]}" status 2>&1); rc=$?
echo "--- onebox-client status (exit $rc):"; printf '%s\n' "$st"
[ $rc -eq 0 ] || fails+=("status exited $rc")
grep -q '^onebox-client .*: connected 192.0.2.2:8080' <<<"$st" || fails+=("status: no 'connected' headline")
grep -Eq '^wan0 +up ' <<<"$st" || fails+=("status: no wan0 row, up")
grep -Eq '^wan1 +up ' <<<"$st" || fails+=("status: no wan1 row, up")
grep -q '^total: up .*Mbit/s\|^total: up .*kbit/s' <<<"$st" || fails+=("status: no totals with a rate during a ping flood")
js=$("${CLI[@]}" status --json 2>&1)
"$LAB_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["daemon"]["State"]=="connected"; assert sorted(l["Name"] for l in d["links"])==["wan0","wan1"]; assert d["daemon"]["TxPackets"]>0' "$js" ||
  fails+=("status --json: not the expected JSON: ${js:0:200}")
sst=$("$ONEBOX_SERVER_BIN" status 2>&1) || fails+=("onebox-server status failed")
echo "--- onebox-server status:"; printf '%s\n' "$sst"
grep -q '1 of 256 clients' <<<"$sst" || fails+=("server status: not '1 of 256 clients'")
grep -q '10\.0\.0\.2' <<<"$sst" || fails+=("server status: the client's tunnel address missing")
nst=$("${AS_NOBODY[@]}" "$ONEBOX_CLIENT_BIN" status 2>&1) || fails+=("status as nobody failed: ${nst:0:200}")
grep -q '^onebox-client .*: connected ' <<<"$nst" || fails+=("status as nobody did not show the session: ${nst:0:200}")
den=$("${AS_NOBODY[@]}" "${B[@]}" call "$C" /org/onebox/Client1 "$C" SetMode s redundant 2>&1) &&
  fails+=("SetMode as nobody was allowed")
grep -qi 'denied' <<<"$den" || fails+=("SetMode as nobody: not 'access denied' but: $den")
echo "as nobody: status $( [ -n "$nst" ] && echo read), SetMode: $den"
w=$(timeout 2.5 "$ONEBOX_CLIENT_BIN" status --watch 2>&1)
frames=$(grep -c 'onebox-client .*: connected' <<<"$w")
echo "status --watch for 2.5 s: $frames frames"
[ "$frames" -ge 2 ] || fails+=("status --watch printed $frames frames in 2.5 s")
wait "$ping_pid"
# Counters moved under the flood, and are not announced (they are read).
grep '"PropertiesChanged"' "$LAB_DIR/monitor.json" | grep -q '"TxPackets"' &&
  fails+=("TxPackets was announced with PropertiesChanged")

# ---- a cut shows in PropertiesChanged ------------------------------------------------
mark=$(wc -l <"$LAB_DIR/monitor.json")
lab_emu_set wan1 "set both cut=1" >/dev/null || lab_fail "linkemu cut"
down=""
for _ in $(seq 40); do
  down=$(tail -n +"$mark" "$LAB_DIR/monitor.json" | grep '"PropertiesChanged"' | grep 'link/wan1' | grep -o '"State":{"type":"s","data":"down"}' | head -n 1)
  [ -n "$down" ] && break
  sleep 0.25
done
[ -n "$down" ] || fails+=("no PropertiesChanged with State down for wan1 within 10 s of its cut")
echo "after the cut of wan1: State $(prop "$C" /org/onebox/Client1/link/wan1 "$C.Link" State)"
lab_emu_set wan1 "set both cut=0" >/dev/null
sleep 3

# ---- methods ---------------------------------------------------------------------------
out=$("${B[@]}" call "$C" /org/onebox/Client1 "$C" SetMode s redundant 2>&1) || fails+=("SetMode redundant: $out")
sleep 1.5
[ "$(prop "$C" /org/onebox/Client1 "$C" Mode)" = 's "redundant"' ] || fails+=("Mode did not become redundant")
[ -n "$PEER" ] && { [ "$(prop "$S" "$PEER" "$S.Client" Mode)" = 's "redundant"' ] || fails+=("the server's client object did not follow to redundant"); }
bad=$("${B[@]}" call "$C" /org/onebox/Client1 "$C" SetMode s fastest 2>&1) && fails+=("SetMode fastest accepted")
echo "SetMode fastest: $bad"
grep -q 'mode must be' <<<"$bad" || fails+=("SetMode fastest: no clear error")

out=$("${B[@]}" call "$C" /org/onebox/Client1/link/wan1 "$C.Link" SetEnabled b false 2>&1) || fails+=("SetEnabled false: $out")
sleep 1
[ "$(prop "$C" /org/onebox/Client1/link/wan1 "$C.Link" Enabled)" = "b false" ] || fails+=("wan1 not Enabled=false")
[ "$(prop "$C" /org/onebox/Client1/link/wan1 "$C.Link" State)" = 's "disabled"' ] || fails+=("wan1 not State disabled")
lab_ping cli "$LAB_INET_IP" 5 || fails+=("no ping with wan1 switched off")
last=$("${B[@]}" call "$C" /org/onebox/Client1/link/wan0 "$C.Link" SetEnabled b false 2>&1) && fails+=("switching off the last link was accepted")
echo "SetEnabled false on the last link: $last"
grep -q 'only link' <<<"$last" || fails+=("last link: no clear error")
out=$("${B[@]}" call "$C" /org/onebox/Client1/link/wan1 "$C.Link" SetEnabled b true 2>&1) || fails+=("SetEnabled true: $out")
on=""
for _ in $(seq 30); do
  [ "$(prop "$C" /org/onebox/Client1/link/wan1 "$C.Link" Enabled)" = "b true" ] && { on=1; break; }
  sleep 0.2
done
[ -n "$on" ] || fails+=("wan1 not back on within 6 s")

out=$("${B[@]}" call "$C" /org/onebox/Client1 "$C" Reload 2>&1) || fails+=("Reload: $out")
[ "$(prop "$C" /org/onebox/Client1 "$C" Mode)" = 's "bond"' ] || fails+=("Reload did not bring back the config's mode (bond)")
cp "$LAB_DIR/client.conf" "$LAB_DIR/client.conf.good"
sed -i 's/^\[client\]$/[client]\nmode = "fastest"/' "$LAB_DIR/client.conf"
bad=$("${B[@]}" call "$C" /org/onebox/Client1 "$C" Reload 2>&1) && fails+=("a broken config was accepted by Reload")
echo "Reload of a broken config: $bad"
grep -q 'client.conf:[0-9]*: client.mode' <<<"$bad" || fails+=("Reload refusal does not name file, line and key")
cli_bad=$("${CLI[@]}" reload 2>&1); rc=$?
echo "onebox-client reload (broken config): exit $rc: $cli_bad"
[ $rc -eq 1 ] && grep -q 'client.mode' <<<"$cli_bad" || fails+=("onebox-client reload of a broken config: exit $rc, '$cli_bad'")
cp "$LAB_DIR/client.conf.good" "$LAB_DIR/client.conf"
"${CLI[@]}" reload || fails+=("onebox-client reload of a good config failed")
lab_ping cli "$LAB_INET_IP" 5 || fails+=("no ping after the reloads")

if [ -n "$PEER" ]; then
  n=$(log_count "$(lab_log_file client)" 'session established')
  mark=$(wc -l <"$LAB_DIR/monitor.json")
  since0=$(prop "$S" "$PEER" "$S.Client" Since)
  sleep 1  # Since has microseconds of the session's creation: make the next one differ
  out=$("${B[@]}" call "$S" "$PEER" "$S.Client" Disconnect 2>&1) || fails+=("Disconnect: $out")
  wait_for_log "$(lab_log_file client)" 'session established' 10 $((n + 1)) || fails+=("the client did not connect again after Disconnect")
  grep -q 'removed: disconnected over D-Bus' "$(lab_log_file server)" || fails+=("the server did not log the Disconnect")
  sleep 1.5
  # The client keeps its session id, so the object comes back at the same
  # path, often within one 500 ms look: announced as removed and added, or
  # as a changed Since.
  tail -n +"$mark" "$LAB_DIR/monitor.json" | grep -E '"InterfacesRemoved"|"InterfacesAdded"|"Since"' | grep -q "$PEER" ||
    fails+=("the new session behind $PEER was not announced (InterfacesRemoved/Added or Since)")
  [ "$(prop "$S" "$PEER" "$S.Client" Since)" != "$since0" ] || fails+=("Since did not change after Disconnect")
fi

# ---- a link that goes away, and comes back ------------------------------------------------
mark=$(wc -l <"$LAB_DIR/monitor.json")
lab_exec cli ip link set wan1 down
sleep 2
lab_exec cli ip link set wan1 up
lab_exec cli ip route replace default via 192.168.20.1 dev wan1 metric 200
sleep 3
tail -n +"$mark" "$LAB_DIR/monitor.json" | grep '"InterfacesRemoved"' | grep -q '/org/onebox/Client1/link/wan1' ||
  fails+=("no InterfacesRemoved for wan1 when its interface went down")
tail -n +"$mark" "$LAB_DIR/monitor.json" | grep '"InterfacesAdded"' | grep -q '/org/onebox/Client1/link/wan1' ||
  fails+=("no InterfacesAdded for wan1 when it came back")

# ---- coalescing, over the whole run ----------------------------------------------------------------
rate=$("$LAB_PY" - "$LAB_DIR/monitor.json" <<'PY'
import json, sys, collections
per = collections.Counter()
for line in open(sys.argv[1]):
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("member") != "PropertiesChanged" or not m.get("path", "").startswith("/org/onebox/"): continue
    per[(m["path"], int(m.get("timestamp-realtime", 0) / 1e6))] += 1
print("%d %d" % (max(per.values()) if per else 0, sum(per.values())))
PY
)
read -r most total <<<"$rate"
echo "PropertiesChanged: $total in all, at most $most for one object in one second"
[ "$total" -ge 1 ] && [ "$most" -le 3 ] || fails+=("PropertiesChanged: $total in all, $most for one object in one second (want 1 or more, at most 3)")

# ---- the bus restarts ---------------------------------------------------------------------------
kill "$LAB_DBUS_PID"; wait "$LAB_DBUS_PID" 2>/dev/null
lab_dbus_start
back=""
for _ in $(seq 40); do
  "${B[@]}" list 2>/dev/null | grep -q "^$C " && "${B[@]}" list 2>/dev/null | grep -q "^$S " && { back=1; break; }
  sleep 0.2
done
[ -n "$back" ] || fails+=("the daemons were not back on a restarted dbus-daemon within 8 s")
"${CLI[@]}" status >/dev/null 2>&1 || fails+=("status failed after the bus restarted")
echo "after a dbus-daemon restart: $( [ -n "$back" ] && echo both names back || echo names missing)"
[ "$(log_count "$(lab_log_file client)" 'Lost the system bus')" -eq 1 ] || fails+=("the client did not say once that it lost the bus")

# ---- stop through D-Bus ------------------------------------------------------------------------
t0=$(date +%s%N)
out=$("${CLI[@]}" stop --pid-file /nonexistent/client.pid 2>&1); rc=$?
t1=$(date +%s%N)
echo "onebox-client stop over D-Bus: exit $rc in $(((t1 - t0) / 1000000)) ms"
[ $rc -eq 0 ] || fails+=("stop over D-Bus: exit $rc: $out")
daemon_alive client && fails+=("the client still runs after stop returned")
grep -q 'stopped; routes and firewall restored' "$(lab_log_file client)" || fails+=("the client did not log its clean stop")
out=$("${CLI[@]}" status 2>&1); rc=$?
echo "status after stop: exit $rc: $out"
[ $rc -eq 3 ] && grep -q 'onebox-client is not running: start it with systemctl start onebox-client' <<<"$out" ||
  fails+=("status after stop: exit $rc, '$out'")

if [ ${#fails[@]} -gt 0 ]; then
  printf 'FAIL: %s\n' "${fails[@]}"
  exit 1
fi
echo "PASS: D-Bus objects, properties, signals, methods, policy and the CLI"
