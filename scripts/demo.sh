#!/usr/bin/env bash
# porthop's demo: the reference's container demo, built from network
# namespaces.  A protected host runs five TCP services (ports 1-5), Redis
# and porthopd; a "bad" scanner (watched, ignoring ports 1 and 2) and a
# "good" one (not watched) scan ports 1-20 with nmap, round after round,
# with a trigger published between rounds.
#
# Then a detector names the good scanner at runtime, and an unknown
# scanner is caught by autowatch; the events of the run are printed.
#
# usage: scripts/demo.sh [-r ROUNDS] [-s sS|sT|sF|sN|sX] [-k]
#   -r ROUNDS  rounds of scans (default 10)
#   -s TYPE    nmap scan type (default sS, the SYN scan)
#   -k         keep going: skip installing packages and rebuilding
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/scripts/lib.sh"
ROUNDS=10
SCAN=sS
SETUP=1
while getopts "r:s:kh" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	s) SCAN=$OPTARG ;;
	k) SETUP=0 ;;
	*) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 64 ;;
	esac
done
case $SCAN in sS|sT|sF|sN|sX) ;; *) echo "demo: -s $SCAN: expected sS, sT, sF, sN or sX" >&2; exit 64 ;; esac
[[ $ROUNDS =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 1000 ] \
	|| { echo "demo: -r $ROUNDS: expected a number of rounds from 1 to 1000" >&2; exit 64; }
require_root "network namespaces, nftables"

BUILD=$SRC/build-demo
if [ $SETUP = 1 ]; then
	bash "$SRC/scripts/deps.sh"
	echo "demo: building porthop"
	cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
	cmake --build "$BUILD" -j "$(nproc)" >/dev/null
fi

. "$SRC/scripts/topology.sh"
P=phd$$
tmp_dir porthop-demo
LOG=$T/porthopd.log
demo_report() {
	[ "$1" -eq 0 ] || { echo "demo: porthopd's log:"; tail -n 20 "$LOG" 2>/dev/null || true; }
}
on_exit demo_report

echo "demo: creating namespaces ${P}host (10.0.0.2), ${P}bad (10.0.0.3, watched), ${P}good (10.0.0.4)"
topo_up "$P"
# Said before the library tears them down (the last registered runs first).
demo_teardown_note() {
	echo
	echo "demo: tearing down the namespaces"
}
on_exit demo_teardown_note
ip netns exec "${P}host" "$BUILD/phsvc" serve 1 2 3 4 5 &
topo_config "$T/configuration.json" "$SRC"
topo_porthopd "$P" "$T/configuration.json"
echo "demo: porthopd is running: $(grep -m1 'shuffle 1 applied' "$LOG" | sed 's/^porthopd: //')"

case $SCAN in
sS) label="SYN scan (nmap -sS)" ;; sT) label="connect scan (nmap -sT)" ;;
sF) label="FIN scan (nmap -sF)" ;; sN) label="NULL scan (nmap -sN)" ;;
sX) label="XMAS scan (nmap -sX)" ;;
esac
echo "demo: $ROUNDS rounds of $label over ports 1-20 of 10.0.0.2"

declare -A seen
for r in $(seq "$ROUNDS"); do
	map=$(topo_redirects "$P" 10.0.0.3)
	good=$(topo_scan "$P" good "$SCAN" 10.0.0.2)
	bad=$(topo_scan "$P" bad "$SCAN" 10.0.0.2)
	echo
	echo "round $r   mapping for 10.0.0.3: $(echo "$map" | awk '{printf "%s->%s  ", $1, $2}')"
	printf "  %-5s %-16s %-16s\n" port "good 10.0.0.4" "bad 10.0.0.3"
	for port in $(seq 20); do
		g=$(echo "$good" | awk -v p=$port '$1 == p {print $2}')
		b=$(echo "$bad" | awk -v p=$port '$1 == p {print $2}')
		[ -n "$g$b" ] || continue
		note=$(echo "$map" | awk -v p=$port '$2 == p {print "(service " $1 ")"}')
		printf "  %5s %-16s %-16s %s\n" "$port" "${g:--}" "${b:--}" "$note"
		[ -n "$b" ] && seen[$port]=$(( ${seen[$port]:-0} + 1 ))
	done
	[ "$r" -eq "$ROUNDS" ] || topo_trigger "$P" "$T/configuration.json"
done

echo
echo "what the bad scanner saw open over $ROUNDS rounds (ports 3-5 are its moved services):"
for port in $(seq 20); do
	c=${seen[$port]:-0}
	printf "  %5s %3d/%d %s\n" "$port" "$c" "$ROUNDS" "$(printf '%*s' "$c" '' | tr ' ' '#')"
done
echo
echo "banner of each moved service, fetched by the bad scanner in the last mapping:"
while read -r real redir; do
	banner=$(ip netns exec "${P}bad" timeout 3 bash -c "exec 3<>/dev/tcp/10.0.0.2/$redir; head -n 1 <&3" 2>/dev/null || echo "(no answer)")
	printf "  10.0.0.2:%-3s -> %s\n" "$redir" "$banner"
done < <(topo_redirects "$P" 10.0.0.3)

# The last round: a detector names the good scanner at runtime.  Runtime
# entries need native mode: a reload switches porthopd to its own table
# (the template's tables deleted in the same transaction), then the
# detector's add, as fail2ban's porthop action, sshguard's
# porthop-sshguard or porthop-crowdsec send it.
open_ports() {
	topo_scan "$P" good "$SCAN" 10.0.0.2 | awk '{printf "%s ", $1}'
}
echo
echo "detector round: 10.0.0.4 (good, not in the configuration) is reported as a scanner"
topo_config_native "$T/native.json"
jq --arg s "$T/state" '.porthopd.state_directory = $s' "$T/native.json" \
	>"$T/configuration.json"
ip netns exec "${P}host" "$BUILD/porthop" reload -s "$T/control.sock" >/dev/null
echo "  porthopd reloaded into native mode: $(grep 'reload applied' "$LOG" | tail -n 1 | sed 's/^porthopd: //')"
echo "  good sees open, before:  $(open_ports)"
ip netns exec "${P}host" "$BUILD/porthop" watch -s "$T/control.sock" \
	add 10.0.0.4 --origin ids --ttl 300 | sed 's/^/  porthop watch add 10.0.0.4 --origin ids --ttl 300: /'
echo "  mapping for 10.0.0.4:    $(topo_redirects "$P" 10.0.0.4 | awk '{printf "%s->%s  ", $1, $2}')"
echo "  good sees open, watched: $(open_ports)"
ip netns exec "${P}host" "$BUILD/porthop" watch -s "$T/control.sock" \
	del 10.0.0.4 --origin ids | sed 's/^/  porthop watch del 10.0.0.4 --origin ids: /'
echo "  good sees open, after:   $(open_ports)"

# The autowatch round: nobody reports the scanner; porthop sees it.  A
# fourth host (10.0.0.7, in no list) scans 1,000 ports; past 15 closed
# ports it is watched (origin autowatch), and its next scan meets its own
# mapping.  Then the events of the run.
echo
echo "autowatch round: 10.0.0.7 (in no list, reported by nobody) scans 1,000 ports"
topo_add_host "$P" scan 10.0.0.7 fd00:70:68::7
jq --arg s "$T/state" '.porthopd.state_directory = $s
	| .nftables_service_configuration.max_port_number = 2000
	| .porthopd.events = {merge_ms: 1000}
	| .porthopd.autowatch = {ports: 15, seconds: 300, ttl_seconds: 3600}' \
	"$T/native.json" >"$T/configuration.json"
ip netns exec "${P}host" "$BUILD/porthop" reload -s "$T/control.sock" >/dev/null
echo "  porthopd reloaded with \"autowatch\": {\"ports\": 15, \"seconds\": 300, \"ttl_seconds\": 3600}"
scan_open() {
	ip netns exec "${P}scan" nmap -sS -p"$1" -n -Pn -T4 --max-retries 1 -oG - 10.0.0.2 2>/dev/null |
		awk -F'Ports: ' '/Ports:/ {n = split($2, p, ", ")
		for (i = 1; i <= n; i++) { split(p[i], f, "/"); sub(/^ +/, "", f[1])
			if (f[2] == "open") printf "%s ", f[1] } }'
}
echo "  first scan (ports 1-1000) saw open: $(scan_open 1-1000)"
wait_log "autowatch: 10.0.0.7" 1 10
echo "  $(grep -m1 'autowatch: 10.0.0.7' "$LOG" | sed 's/^porthopd: //')"
ip netns exec "${P}host" "$BUILD/porthop" watch -s "$T/control.sock" list --origin autowatch |
	sed 's/^/  /'
echo "  mapping for 10.0.0.7:   $(topo_redirects "$P" 10.0.0.7 | awk '{printf "%s->%s  ", $1, $2}')"
echo "  next scan (ports 1-2000) saw open: $(scan_open 1-2000)"
sleep 1.5	# the last merge window closes
echo
echo "the events of the run (porthop events; probes summed per source):"
ip netns exec "${P}host" "$BUILD/porthop" events -s "$T/control.sock" --json >"$T/events.jsonl"
jq -rs 'map(select(.kind == "probe")) | group_by(.source)[]
	| "  probe    \(.[0].source): \(length) closed ports, \(map(.count) | add) packets"' "$T/events.jsonl"
jq -r 'select(.kind != "probe") | "  \(.kind | . + "        " | .[0:8]) \(.source) \(.proto)/\(.port)\(if .real_port then " (service \(.real_port))" else "" end) x\(.count) gen \(.generation)"' \
	"$T/events.jsonl"
