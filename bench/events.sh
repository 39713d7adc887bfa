#!/usr/bin/env bash
# The probe event feed's costs and speed, side by side in one run on the
# demo's namespace topology plus two hosts: scan (an unwatched scanner)
# and flood (a packet generator).
#
#   1. autowatch latency: an nmap SYN scan of 1,000 ports from scan; the
#      host's kernel is polled (every ~10 ms) for the moment the 15th SYN
#      from scan arrived (a counter in a table of the benchmark's own) and
#      the moment scan's address is in porthop's tracked4 (watched).  Its
#      next scan must see the moved ports.
#   2. a flood: hping3 --flood with random sources (SYNs to random closed
#      ports, far more than 10,000 distinct sources) for FLOOD_SECONDS or
#      until FLOOD_PACKETS reached the host; porthopd's RSS before, after
#      and at its peak (VmHWM), its CPU time over the flood (1.0 = one
#      core), what the kernel's rate limits held back and what was lost
#      on the way (both counted).
#   3. the data plane: TCP connection rate of good (unwatched, never
#      probing) to the real port, events on against the same build with
#      events off (a reload between), ROUNDS interleaved rounds, the
#      order alternated; the ratio per round (median [95 % CI]).
#
# usage: bench/events.sh [BUILD_DIR] [SECONDS_PER_RUN] [ROUNDS]
#   FLOOD_SECONDS (default 20), FLOOD_PACKETS (default 1000000)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
SECS=${2:-2}
ROUNDS=${3:-9}
FLOOD_SECONDS=${FLOOD_SECONDS:-20}
FLOOD_PACKETS=${FLOOD_PACKETS:-1000000}
require_root "network namespaces"
require_tools nmap hping3 jq nft
. "$SRC/scripts/topology.sh"

P=phv$$
bench_tmp porthop-events
topo_up "$P"
topo_add_host "$P" scan 10.0.0.7 fd00:70:68::7
topo_add_host "$P" flood 10.0.0.8 fd00:70:68::8
H="ip netns exec ${P}host"
# Replies to random sources go nowhere; the host takes them in anyway.
$H sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
ip netns exec "${P}flood" ip route add default dev eth0
CPU_SVC=0
$H taskset -c $CPU_SVC "$BUILD/phsvc" serve 1 2 3 4 5 &
redis_start "${P}host"

topo_config_native "$T/base.json"
jq --arg s "$T/state" '.nftables_service_configuration.max_port_number = 2000
	| .porthopd.state_directory = $s
	| .porthopd.autowatch = {}' "$T/base.json" >"$T/on.json"
jq '.porthopd.state_directory = ""' "$T/base.json" >"$T/off.json"
cp "$T/on.json" "$T/events.json"
porthopd_start "${P}host" -c "$T/events.json" -s "$T/control.sock" -T
pid=$PORTHOPD_PID
ctl() { $H "$BUILD/porthop" "$@" -s "$T/control.sock"; }

# --- 1. autowatch latency -------------------------------------------------
$H nft -f - <<'NFT'
table inet bench {
	counter scan_syn { }
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		ip saddr 10.0.0.7 tcp flags & (syn | ack) == syn counter name "scan_syn"
	}
}
NFT
now_ms() { echo $(( ${EPOCHREALTIME/[.,]/} / 1000 )); }
ip netns exec "${P}scan" nmap -sS -p1-1000 -n -Pn -T4 --max-retries 1 10.0.0.2 \
	>"$T/scan1.out" 2>&1 &
scan=$!
t_cross="" t_watched=""
deadline=$(( $(now_ms) + 60000 ))
while [ -z "$t_watched" ] && [ "$(now_ms)" -lt $deadline ]; do
	n=$($H nft -j list counter inet bench scan_syn | jq '.nftables[1].counter.packets')
	t=$(now_ms)
	[ -z "$t_cross" ] && [ "$n" -ge 15 ] && t_cross=$t
	if $H nft list set inet porthop tracked4 | grep -q '10\.0\.0\.7'; then
		t_watched=$(now_ms)
	fi
	sleep 0.005
done
wait $scan || true
[ -n "$t_cross" ] && [ -n "$t_watched" ] || { echo "scan was never watched" >&2; exit 1; }
latency=$(( t_watched - t_cross ))
want=$(topo_redirects "$P" 10.0.0.7 | awk '{print $2}' | sort -n | tr '\n' ' ')
seen=$(ip netns exec "${P}scan" nmap -sS -p1-2000 -n -Pn -T5 --max-retries 2 -oG - \
	10.0.0.2 2>/dev/null | awk -F'Ports: ' '/Ports:/ {n = split($2, p, ", ")
	for (i = 1; i <= n; i++) { split(p[i], f, "/"); sub(/^ +/, "", f[1])
		if (f[2] == "open") print f[1] } }' | sort -n | tr '\n' ' ')
next_scan="moved ports seen"
[ "$seen" = "$want" ] || next_scan="NOT the moved picture: saw \"$seen\", expected \"$want\""
$H nft delete table inet bench

# --- 2. the flood ---------------------------------------------------------
rss() { awk '$1 == "'"$1"':" {print $2}' "/proc/$pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
metric() { ctl metrics | awk -v k="$1" '$1 == k {print $2}'; }
rx() { $H cat /sys/class/net/eth0/statistics/rx_packets; }
rss0=$(rss VmRSS)
ticks0=$(cpu_ticks)
rx0=$(rx)
kern0=$(metric 'porthop_events_dropped_total{reason="kernel_limit"}')
probes0=$(metric 'porthop_events_packets_total{kind="probe"}')
t0=$(now_ms)
ip netns exec "${P}flood" timeout "$FLOOD_SECONDS" hping3 --flood --rand-source \
	-S -p ++1000 10.0.0.2 >/dev/null 2>&1 &
flood=$!
while kill -0 $flood 2>/dev/null && [ $(( $(rx) - rx0 )) -lt "$FLOOD_PACKETS" ]; do
	sleep 0.2
done
kill $flood 2>/dev/null || true
wait $flood 2>/dev/null || true
t1=$(now_ms)
sleep 1	# the last windows close, the reader drains
packets=$(( $(rx) - rx0 ))
elapsed=$(( t1 - t0 ))
cpu=$(awk -v t="$(( $(cpu_ticks) - ticks0 ))" -v hz="$(getconf CLK_TCK)" -v ms="$elapsed" \
	'BEGIN {printf "%.2f", t / hz / (ms / 1000)}')
rss1=$(rss VmRSS)
hwm=$(rss VmHWM)
kern=$(( $(metric 'porthop_events_dropped_total{reason="kernel_limit"}') - kern0 ))
probes=$(( $(metric 'porthop_events_packets_total{kind="probe"}') - probes0 ))
lost=$(metric 'porthop_events_dropped_total{reason="socket"}')
merge=$(metric 'porthop_events_dropped_total{reason="merge_full"}')
sources=$(metric porthop_autowatch_sources)

# --- 3. the data plane, events on and off ----------------------------------
wait_for 10 "the service" ip netns exec "${P}good" bash -c "exec 3<>/dev/tcp/10.0.0.2/1"
use() {
	cp "$T/$1.json" "$T/events.json"
	ctl reload >/dev/null
}
one() { ip netns exec "${P}good" taskset -c 1 "$BUILD/phsvc" rate 10.0.0.2 1 "$SECS"; }
for r in $(seq 0 $((ROUNDS - 1))); do
	for half in $((r % 2)) $(((r + 1) % 2)); do
		if [ "$half" -eq 0 ]; then use on; one >>"$T/r.on"
		else use off; one >>"$T/r.off"; fi
	done
done
ratio=$(paste "$T/r.on" "$T/r.off" | awk '$2 > 0 {print $1 / $2}' | sort -g | awk '
	{v[NR] = $1; l = log($1); s += l; q += l * l}
	END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	     mu = s / NR; sd = NR > 1 ? sqrt((q - NR * mu * mu) / (NR - 1)) : 0
	     e = 1.96 * sd / sqrt(NR)
	     printf "%.3fx [%.3f-%.3f]", m, exp(mu - e), exp(mu + e)}')

cat <<EOF

## events ($(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r))

| what | figure | goal |
| --- | --- | --- |
| autowatch: 15th SYN of an nmap SYN scan (1,000 ports) at the host -> its address watched | $latency ms | < 1000 ms |
| its next scan | $next_scan | the moved ports |
| flood: packets at the host (hping3 --flood --rand-source, $((elapsed / 1000)) s) | $packets ($((packets * 1000 / (elapsed > 0 ? elapsed : 1))) /s) | >= 1,000,000 from >= 10,000 sources |
| ... probe packets logged to porthopd / held back by the kernel's limit (counted) | $probes / $kern | |
| ... lost on the way (counted) / merge table full (counted) | $lost / $merge | |
| ... sources autowatch counted at the end (bounded) | $sources | |
| ... porthopd RSS before / after / peak | $rss0 / $rss1 / $hwm kB | bounded |
| ... porthopd CPU over the flood | $cpu cores | < 1 |
| connection rate of an unwatched, non-probing client, events on / off ($ROUNDS rounds of ${SECS} s) | $ratio (median $(median <"$T/r.on") / $(median <"$T/r.off") conn/s) | >= 0.97x |
EOF
porthopd_stop
