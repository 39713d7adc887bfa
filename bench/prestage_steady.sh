#!/usr/bin/env bash
# prestage under load: a trigger every second for SECONDS at PAIRS pairs
# (prestage true), while a watched client opens TCP connections through a
# moved port, on the demo's namespace topology plus a control host:
#
#   host  10.0.0.2  porthopd; services on every port 1-200
#   ctl   10.0.0.5  the same services, no rules at all
#   bad   10.0.0.3  the watched client: port 1 of host (moved to a
#                   redirect port in 101-200, a new one every second,
#                   where a service answers) and port 1 of ctl
#
# The watched client is one of PAIRS / 100 watched addresses of 100 ports
# each.  Its connection rate is measured in runs of 2 s, host and ctl
# alternated (the order swapped each round), the ratio taken within each
# round; the table gives the median ratio and its spread.  Beside it:
# p50/p99 of trigger to in force (the message's arrival to the applied
# line, porthopd's -T stamps), how many triggers fell back to the full
# replace, and porthopd's CPU over the run.
#
# usage: bench/prestage_steady.sh [BUILD_DIR] [SECONDS] [PAIRS]
#   TRIGGERS=0: the same run without triggers (the client's cost of the
#   NAT and conntrack alone, beside which the switches' cost shows)
set -euo pipefail
. "$(dirname "$0")/common.sh"
bench_build "${1:-}"
SECS=${2:-60}
PAIRS=${3:-100000}
require_root "network namespaces"
. "$SRC/scripts/topology.sh"

P=phs$$
bench_tmp porthop-steady
topo_up "$P"
topo_add_host "$P" ctl 10.0.0.5 fd00:70:68::5
for h in host ctl; do
	ip netns exec "${P}$h" "$BUILD/phsvc" serve $(seq 1 200) &
done

na=$((PAIRS / 100))
{
	echo "{\"redis_connection_configuration\": {\"host\": \"127.0.0.1\", \"port\": 6379, \"db\": 0, \"charset\": \"utf-8\", \"decode_responses\": true},"
	echo " \"redis_subscriber_configuration\": {\"subscriber_channel_names\": [\"bench\"]},"
	echo " \"porthopd\": {\"reconcile_interval_seconds\": 5, \"state_directory\": \"\"},"
	echo " \"nftables_service_configuration\": {\"prestage\": true,"
	echo "  \"max_port_number\": 200, \"tcp_ports\": [$(seq -s, 1 100)],"
	echo "  \"watched_addresses\": [{\"ip\": \"10.0.0.3\"}"
	awk -v n="$((na - 1))" 'BEGIN {for (i = 0; i < n; i++)
		printf ",\n{\"ip\": \"10.1.%d.%d\"}", int(i / 250), i % 250 + 1}'
	echo "]}}"
} >"$T/cfg.json"
redis_start "${P}host"
: >"$LOG"
porthopd_spawn "${P}host" -c "$T/cfg.json" -s "$T/control.sock" -v -T
pid=$PORTHOPD_PID
WAIT_PID=$pid wait_log "subscribed" 1 600
WAIT_PID=$pid wait_log "the next mapping is staged" 1 600

# The triggers: one a second, in the background.
(
	t0=$(date +%s.%N)
	for i in $(seq "$SECS"); do
		[ "${TRIGGERS:-1}" = 0 ] ||
			ip netns exec "${P}host" redis-cli PUBLISH bench '{}' >/dev/null
		now=$(date +%s.%N)
		sleep "$(awk -v t="$t0" -v i="$i" -v n="$now" 'BEGIN {d = t + i - n; printf "%.3f", (d > 0 ? d : 0)}')"
	done
) &
triggers=$!
cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
t0=$(date +%s.%N)

all_served() {
	[ "$(trigger_latencies "$LOG" | grep -c .)" -eq "$SECS" ]
}

rate() {
	local r
	r=$(ip netns exec "${P}bad" "$BUILD/phsvc" rate "$1" 1 2 2>>"$T/failures" || true)
	echo "${r:-0}"
}
ratios=() hosts=() ctls=()
round=0
while kill -0 "$triggers" 2>/dev/null; do
	if [ $((round % 2)) = 0 ]; then
		h=$(rate 10.0.0.2); c=$(rate 10.0.0.5)
	else
		c=$(rate 10.0.0.5); h=$(rate 10.0.0.2)
	fi
	hosts+=("$h") ctls+=("$c")
	ratios+=("$(awk -v a="$h" -v b="$c" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')")
	round=$((round + 1))
done
wait "$triggers"
# Every trigger arrived and served (those that came together by one
# shuffle).
if [ "${TRIGGERS:-1}" != 0 ]; then
	WAIT_PID=$pid wait_log "trigger on channel" "$SECS" 600
	WAIT_PID=$pid wait_for 600 "every trigger served" all_served
fi
t1=$(date +%s.%N)
cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
lat=$(trigger_latencies "$LOG")
shuffles=$(grep -c "applied (redis)" "$LOG" || true)
fallbacks=$(grep -c "no staged mapping ready" "$LOG" || true)
switches=$(grep -c "switched to the staged mapping" "$LOG" || true)
p50=$(echo "$lat" | percentile 50)
p99=$(echo "$lat" | percentile 99)
cpu=$(awk -v c="$((cpu1 - cpu0))" -v hz="$(getconf CLK_TCK)" -v a="$t0" -v b="$t1" \
	'BEGIN {printf "%.1f", c / hz / (b - a) * 100}')
stage=$(grep "the next mapping is staged" "$LOG" | sed 's/.* in \([0-9.]*\) ms/\1/' | median)
rss=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
porthopd_stop || true
fails=$(grep -c . "$T/failures" 2>/dev/null || true)

echo "# $(nproc) CPUs, $(uname -r); a trigger every second for $SECS s, prestage true; $round rounds of 2 s, host and ctl alternated"
printf "%-8s %8s %8s %9s %9s %9s %10s %10s %11s %11s %15s %7s %9s\n" pairs triggers shuffles switches fallbacks p50 p99 "staging" "moved port" "no rules" "ratio (spread)" CPU RSS
printf "%-8s %8s %8s %9s %9s %6s ms %7s ms %7s ms %9s/s %9s/s %6s (%s) %6s%% %6s MB\n" \
	"$PAIRS" "$SECS" "$shuffles" "$switches" "$fallbacks" "$p50" "$p99" "$stage" \
	"$(printf "%s\n" "${hosts[@]}" | median)" "$(printf "%s\n" "${ctls[@]}" | median)" \
	"$(printf "%s\n" "${ratios[@]}" | median)" \
	"$(printf "%s\n" "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%s-%s", a[1], a[NR]}')" \
	"$cpu" "$rss"
[ "${fails:-0}" -eq 0 ] || echo "# connection failures reported: $(sort "$T/failures" | uniq -c | tr '\n' ' ')"
